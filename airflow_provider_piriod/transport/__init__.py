"""How requests reach Piriod and answers come back: the transport behind the hooks.

``sync`` (urllib3, for PiriodHook) and ``aio`` (httpx, for PiriodAsyncHook) share the rules of
``answers`` (typed, scrubbed errors), ``bodies`` (size cap, bounded decompression), ``calls``
(retries and the task log) and ``pages`` (which ``next`` links are followed, when a walk stops).
``session`` holds the settings in effect (headers, proxy, CA bundle); ``attempt`` bounds one blocking
attempt as a whole; ``throttle`` paces a hook's requests.
"""
