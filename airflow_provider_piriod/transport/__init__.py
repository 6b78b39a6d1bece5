"""How requests reach Piriod and answers come back: ``sync`` (PiriodHook) and ``aio`` (PiriodAsyncHook, in
worker threads) send each ``attempt`` through urllib3 with the settings ``session`` read, check its ``framing``,
and share ``calls`` (retries, the task log), ``pages`` (the page walker) and ``throttle`` (pacing)."""
