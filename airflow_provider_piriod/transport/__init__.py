"""How requests reach Piriod and answers come back: the transport behind the hooks.

``sync`` (requests, for PiriodHook) and ``aio`` (httpx, for PiriodAsyncHook) share the rules
of ``answers`` (typed, scrubbed errors), ``bodies`` (deadline, size cap, bounded decompression)
and ``pages`` (which ``next`` links are followed, when a walk stops).
"""
