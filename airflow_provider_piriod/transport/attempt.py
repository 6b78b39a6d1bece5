"""One blocking attempt at a request, bounded as a whole: connect, send, status, headers and body.

urllib3 sends it, over its pooled kept-alive connections (or the environment's proxy). What urllib3
leaves open is closed here, in as little code as it takes:

* **a deadline for the whole attempt.** urllib3 only has per-read timeouts, so a server sending one
  byte of its status line a second never trips them. A watchdog thread keeps the deadlines of the
  attempts in flight; when one passes, it shuts down the socket of each connection the attempt is
  using, which wakes the blocked read at once. A connection belongs to the last attempt that used it,
  so a late deadline never shuts down a connection another thread has taken from the pool since.
* **whether the request left whole** (:attr:`Attempt.sent`): a write whose request never left may be
  sent again; one whose answer was lost after it left may not.
* **header blocks http.client would read leniently are refused** (:class:`CheckedResponse`).
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import re
import socket
import threading
import time
import weakref
from contextlib import suppress
from typing import Any

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

#: how often an expired attempt looks again for a socket still being connected
_RECHECK = 0.02
_LOCK = threading.Lock()  # who owns which connection, and shutting their sockets down


class Attempt:
    """One attempt's deadline, the connections it uses, and whether its request left whole."""

    __slots__ = ("connections", "deadline", "expired", "sent")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        #: the whole request was handed to the socket: the server may have acted on it
        self.sent = False
        self.connections: list[Any] = []

    def join(self, connection: Any) -> None:
        """``connection`` works for this attempt from now on (a new one, or one taken from the pool)."""
        with _LOCK:
            connection.attempt = self
            if all(connection is not known for known in self.connections):
                self.connections.append(connection)
            if self.expired:
                _shut(connection.sock)

    def expire(self) -> bool:
        """Shut down the sockets this attempt still owns; True if one is still being connected (look again)."""
        with _LOCK:
            self.expired = True
            owned = [c for c in self.connections if c.attempt is self and not _answered(c)]
            for connection in owned:
                _shut(connection.sock)
            return any(connection.sock is None for connection in owned)


def _answered(connection: Any) -> bool:
    """The answer read on ``connection`` is whole: it may be back in the pool, taken by another attempt."""
    answer = connection.answer() if connection.answer is not None else None
    return connection.answer is not None and (answer is None or answer.isclosed())


def _shut(sock: Any) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the TLS layer must stay intact for the reader,
    # which then sees end-of-file and fails cleanly
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires attempts whose deadline passed."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._heap: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, attempt: Attempt, when: float | None = None) -> None:
        with self._ready:
            heapq.heappush(self._heap, (attempt.deadline if when is None else when, next(self._order), attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="piriod-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is attempt:  # it sleeps until the earliest deadline: wake it for an earlier one
                self._ready.notify()

    def disarm(self, attempt: Attempt) -> None:
        with self._ready:
            attempt.deadline = float("-inf")  # marks it done; dropped when it reaches the top of the heap

    def _run(self) -> None:
        with self._ready:
            while True:
                while self._heap and self._heap[0][2].deadline == float("-inf"):
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._ready.wait(60)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                when, _, attempt = self._heap[0]
                now = time.monotonic()
                if when > now:
                    self._ready.wait(when - now)
                    continue
                heapq.heappop(self._heap)
                if attempt.expire():
                    heapq.heappush(self._heap, (now + _RECHECK, next(self._order), attempt))


_WATCHDOG = _Watchdog()
_current = threading.local()


class attempt_deadline:  # used as a function: ``with attempt_deadline(when) as attempt``
    """Run the block as one attempt: the connections it uses are shut down when ``deadline`` (monotonic) passes."""

    __slots__ = ("_attempt",)

    def __init__(self, deadline: float) -> None:
        self._attempt = Attempt(deadline)

    def __enter__(self) -> Attempt:
        _WATCHDOG.arm(self._attempt)
        _current.attempt = self._attempt
        return self._attempt

    def __exit__(self, *exc_info: object) -> None:
        _current.attempt = None
        _WATCHDOG.disarm(self._attempt)


def _join_current(connection: Any) -> Attempt | None:
    attempt = getattr(_current, "attempt", None)
    if attempt is not None:
        attempt.join(connection)
    return attempt


# ----------------------------------------------------------------------------- what arrives is checked


# RFC 9110 5.1: a field name is a token
_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:")


class _HeadLines:
    """Records the lines http.client reads for a status line and header block, to check them afterwards."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(limit)
        self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:  # close() and the rest, should http.client need them meanwhile
        return getattr(self.raw, name)


# RFC 9112 7.1: chunk-size = 1*HEXDIG, then optional extensions (their content is not looked at)
_CHUNK_SIZE_LINE = re.compile(rb"[0-9A-Fa-f]+[ \t]*(;[^\r\n]*)?\r?\n")


class _ChunkLines(_HeadLines):
    """Refuses a chunk-size line http.client's ``int(line, 16)`` would read but a strict peer would not
    (``0x20``, ``+20``, ``2_0``, `` 20``): the same bytes framed two ways is how requests get smuggled."""

    def __init__(self, raw: Any) -> None:
        super().__init__(raw)
        self.trailer = False  # after the last chunk come trailer fields, not sizes

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(limit)
        if not self.trailer:
            if not _CHUNK_SIZE_LINE.fullmatch(line):
                raise http.client.HTTPException("an answer with a chunk size that is not hexadecimal digits")
            self.trailer = int(line.split(b";", 1)[0], 16) == 0
        return line


def _line_problem(lines: list[bytes]) -> str | None:
    """What is wrong with a header block, if anything; the status lines are http.client's to check."""
    field_before = False  # a folded line continues the field before it: the first line of a block cannot fold
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line or line.startswith(b"HTTP/"):
            field_before = False
            continue
        if b"\r" in line or b"\0" in line:  # RFC 9110 5.5: a bare CR could hide the next field inside this one
            return "an answer with a CR or NUL inside a header line"
        folded = line[:1] in (b" ", b"\t")
        if (folded and not field_before) or (not folded and not _FIELD_LINE.match(line)):
            return "an answer with a header line that is not 'name: value'"  # no echo: it may hold the token
        field_before = True
    return None


def repeated_length(declared: str | None) -> int | None:
    """One length repeated (``40, 40``), which RFC 9112 6.3 lets a client read as that length; else None."""
    values = {value.strip() for value in (declared or "").split(",")}
    if len(values) != 1:
        return None
    (value,) = values
    return int(value) if value.isascii() and value.isdigit() else None


class CheckedResponse(http.client.HTTPResponse):
    """http.client's answer, refused where http.client would guess, and never reused where framing is unsure.

    http.client parses; this only looks at what it read. Refused: a header line that is not ``name: value``
    (http.client ends the headers there and loses the ``Content-Length`` after it), a bare CR or a NUL in a
    line, a transfer coding other than plain ``chunked`` (http.client frames it by ``Content-Length``). A
    length repeated (``40, 40``) frames the body. After an interim (1xx) answer, or a 204/304 that declares
    a body, what follows on the connection may still be this answer: the connection is closed, not reused.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        head = _HeadLines(self.fp)
        self.fp = head
        try:
            super().begin()
        finally:
            self.fp = head.raw
        problem = _line_problem(head.lines)
        codings = ", ".join(self.headers.get_all("Transfer-Encoding") or [])
        if problem is None and codings and codings.strip().lower() != "chunked":
            problem = "an answer with a transfer coding other than chunked"
        if problem is None and codings and self.headers.get_all("Content-Length"):
            problem = "an answer framed both by chunks and by a Content-Length"  # RFC 9112 6.3: an error
        if problem is not None:
            raise http.client.HTTPException(problem)
        lengths = ", ".join(self.headers.get_all("Content-Length") or [])
        if self.length is None and not self.chunked and lengths and self.status >= 200:
            self.length = repeated_length(lengths)  # http.client's int() cannot read "40, 40"
        if self.chunked:
            self.fp = _ChunkLines(self.fp)
        if self.status < 200 or (self.status in (204, 304) and (codings or repeated_length(lengths or "0") != 0)):
            self.will_close = True


class _Watched:
    """A connection that works for the attempt running on its thread, and reads answers as CheckedResponse."""

    attempt: Attempt | None = None
    #: the answer being read on it; once it is whole (or gone), the attempt lets go of the connection
    answer: weakref.ref[Any] | None = None
    sock: Any

    def connect(self) -> None:
        _join_current(self)  # before the socket exists: the tunnel and TLS set-up are bounded too
        super().connect()  # type: ignore[misc]
        _join_current(self)  # its socket shut at once if the deadline passed meanwhile

    def request(self, *args: Any, **kwargs: Any) -> None:
        self.answer = None
        attempt = _join_current(self)  # a reused connection's socket, for this attempt
        super().request(*args, **kwargs)  # type: ignore[misc]
        if attempt is not None:
            attempt.sent = True

    def getresponse(self) -> Any:
        answer = super().getresponse()  # type: ignore[misc]
        self.answer = weakref.ref(answer)  # not the answer itself: a connection must not keep its socket's reader
        return answer


class WatchedConnection(_Watched, HTTPConnection):
    response_class = CheckedResponse  # http.client's hook for the class that reads the answer


class WatchedTLSConnection(_Watched, HTTPSConnection):
    response_class = CheckedResponse


class WatchedPool(HTTPConnectionPool):
    ConnectionCls = WatchedConnection


class WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = WatchedTLSConnection


#: what a urllib3 PoolManager (or ProxyManager) builds its pools from, so every connection is watched
WATCHED_POOLS = {"http": WatchedPool, "https": WatchedTLSPool}
