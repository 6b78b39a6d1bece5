"""One attempt at a request, bounded as a whole: connect, send, status, headers, body (within its budget), decode.

urllib3 sends it over its pooled connections and bounds each read only, so a watchdog thread shuts down the
sockets of an attempt whose deadline passed, which wakes its blocked read at once; a connection belongs to
the last attempt that used it, so a late deadline never shuts one another thread has taken since.
:attr:`Attempt.sent` says whether the request left whole: a write whose answer was then lost may have acted.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import (
    PiriodConnectionSetupError,
    PiriodError,
    PiriodNetworkError,
    PiriodResponseError,
)
from airflow_provider_piriod.protocol import PiriodDecodeError, answer_json
from airflow_provider_piriod.redaction import redact
from airflow_provider_piriod.transport.calls import deadline_error, network_error
from airflow_provider_piriod.transport.framing import CheckedResponse, repeated_length

#: the encodings requests ask for (``Accept-Encoding``) and BodyDecoder undoes
ACCEPT_ENCODING = "gzip, deflate"
#: most raw bytes read, and decoded bytes produced, at once: the size cap is checked as a body grows
STEP = 64 * 1024
#: how often an expired attempt looks again for a socket still being connected
_RECHECK = 0.02
_CLIENT_ERRORS = (urllib3.exceptions.HTTPError, OSError, ValueError)
_LOCK = threading.Lock()  # who owns which connection, and shutting their sockets down


def send(
    route: Any, settings: PiriodSettings, method: str, url: str, params: Any, payload: bytes | None, started: Any = None
) -> Any:
    """One attempt on ``route`` (a :class:`~.session.Route`): the answer's JSON (None for an empty 2xx write),
    or a typed error, marked with whether the request had left whole. ``started`` is told the :class:`Attempt`."""
    path, timeout, secrets = urlsplit(url).path, settings.timeout, settings.token
    headers = {} if payload is None else {"Content-Type": "application/json"}
    failure: PiriodError | None = None
    with Attempt(time.monotonic() + timeout) as attempt:
        if started is not None:
            started(attempt)
        try:
            answer = route.open(method, url, payload, headers, timeout, params)
            try:
                body = _read_body(answer, settings, method, path, attempt.deadline)
            finally:
                _finish(answer)
        except (PiriodError, *_CLIENT_ERRORS) as exc:
            if attempt.expired:  # the watchdog shut the socket: whatever the client made of it, the deadline passed
                failure = deadline_error(method, path, timeout)
            elif isinstance(exc, PiriodError):
                raise
            else:
                failure = network_error(
                    method, path, exc, secrets, base_url=settings.base_url, conn_id=settings.conn_id
                )
        if failure is not None:
            # raised outside the except block: the client's exception (which may quote an echoed token) is no context
            network = failure.as_network_error if isinstance(failure, PiriodConnectionSetupError) else failure
            if isinstance(network, PiriodNetworkError):
                network.request_sent = attempt.sent  # whether Piriod may have acted on it
            raise failure
        if attempt.expired:  # the watchdog cut the body short
            raise deadline_error(method, path, timeout, answer.status, request_sent=True)
    if not body and method != "GET" and 200 <= answer.status < 300:
        return None  # a DELETE's 204
    return answer_json(method, path, answer.status, answer.reason or "", body, answer.headers, secrets)


def _read_body(answer: Any, settings: PiriodSettings, method: str, path: str, deadline: float) -> bytes:
    """Raw bytes as they arrive, decoded here within the size cap (never by a client library, unbounded)."""
    where = {"method": method, "path": path, "status": answer.status, "secrets": settings.token}
    budget = BodyBudget(limit=settings.max_response_bytes, timeout=settings.timeout, deadline=deadline, **where)
    budget.check_declared(answer.headers.get("Content-Length"))
    decoder = BodyDecoder(answer.headers.get("Content-Encoding"), budget)
    while chunk := answer.read1(STEP, decode_content=False):  # what has arrived, never waits for more
        decoder.feed(chunk)  # counted and checked against the deadline
    return decoder.finish()


def _finish(answer: Any) -> None:
    """Give the connection back to its pool: as it is if the body was read to its end, else closed first."""
    if not answer.isclosed():
        answer.close()  # closes the connection too: what is left of the body must not reach the next request
    answer.release_conn()


class BodyBudget:
    """A total deadline and a size cap, checked on the raw bytes and on every decoded piece."""

    def __init__(
        self, *, limit: int, timeout: float, deadline: float, method: str, path: str, status: int, secrets: Any = ()
    ) -> None:
        self.limit, self.timeout, self.deadline = limit, timeout, deadline
        self.method, self.path, self.status = method, path, status
        self.secrets = secrets  # a header value quoted in an error is cut short only after they are cut out
        self.raw = self.size = 0

    def check_declared(self, content_length: str | None) -> None:
        """Refuse a body whose declared length is too large, or not a length at all (RFC 9112 6.3)."""
        if content_length is None:
            return
        length = repeated_length(content_length)
        if length is None:
            raise self.error(
                f"the answer's Content-Length is not a length ({redact(content_length, self.secrets)[:20]!r})"
            )
        if length > self.limit:
            raise self._too_large(f"answer of {length} bytes")

    def add_raw(self, count: int) -> None:
        self.raw += count
        if self.raw > self.limit:
            raise self._too_large("answer")
        self.check_time()

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise self._too_large("decoded answer")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise deadline_error(self.method, self.path, self.timeout, self.status)

    def error(self, what: str, kind: type[PiriodResponseError] = PiriodResponseError) -> PiriodResponseError:
        return kind(
            f"Piriod {self.method} {self.path}: {what}", status_code=self.status, method=self.method, path=self.path
        )

    def _too_large(self, what: str) -> PiriodResponseError:
        return self.error(f"{what} exceeds the {self.limit}-byte limit (connection extra max_response_bytes)")


class BodyDecoder:
    """Undo ``Content-Encoding`` (identity, gzip or deflate) one bounded step at a time."""

    def __init__(self, content_encoding: str | None, budget: BodyBudget) -> None:
        self.budget = budget
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1:
            raise budget.error(f"stacked Content-Encoding {', '.join(codings)!r} is refused")
        self._coding = codings[0] if codings else None
        if self._coding not in (None, "gzip", "x-gzip", "deflate"):
            coding = redact(self._coding, budget.secrets)[:40]
            raise budget.error(f"Content-Encoding {coding!r} is not supported (asked for {ACCEPT_ENCODING})")
        self._inflater: zlib._Decompress | None = None
        self._parts: list[bytes] = []

    def feed(self, raw: bytes) -> None:
        """Count ``raw`` and keep what it decodes to; raises once the deadline or the size cap is passed."""
        self.budget.add_raw(len(raw))
        for piece in (raw,) if self._coding is None else self._inflate(raw):
            self.budget.add(piece)
            self._parts.append(piece)

    def finish(self) -> bytes:
        """The whole decoded body; a compressed stream cut short is a (retried) decode error."""
        if self._coding is not None and (self._inflater is None or not self._inflater.eof) and self.budget.raw:
            raise self.budget.error(f"the {self._coding} body ends before its end marker", PiriodDecodeError)
        return b"".join(self._parts)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while True:
            if self._inflater is None:
                self._inflater = zlib.decompressobj(self._window_bits(data))
            inflater = self._inflater
            try:
                piece = inflater.decompress(data, STEP)
            except zlib.error:
                raise self.budget.error(f"the {self._coding} body is corrupt") from None
            data = inflater.unconsumed_tail
            if piece:
                yield piece
            if inflater.eof:
                data = inflater.unused_data + data
                if not data:
                    return
                if self._coding == "deflate" or not b"\x1f\x8b".startswith(data[:2]):
                    raise self.budget.error(f"data follows the end of the {self._coding} body")
                self._inflater = None  # another gzip member
                continue
            if not data and len(piece) < STEP:
                return

    def _window_bits(self, data: bytes) -> int:
        if self._coding != "deflate":
            return 16 + zlib.MAX_WBITS
        # "deflate" is meant to be zlib-wrapped; some servers send raw deflate
        zlib_wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


class Attempt:
    """One attempt (``with Attempt(deadline)``): the connections it uses are shut down once ``deadline``
    (monotonic) passes; ``sent`` says whether its whole request left."""

    __slots__ = ("connections", "deadline", "expired", "sent")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.sent = False  # the whole request was handed to the socket: the server may have acted on it
        self.connections: list[Any] = []

    def __enter__(self) -> Attempt:
        _WATCHDOG.arm(self)
        _current.attempt = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.attempt = None
        _WATCHDOG.disarm(self)

    def cancel(self) -> None:
        """End the attempt now, as if its deadline had passed: nobody waits for its answer any more."""
        _WATCHDOG.arm(self, time.monotonic())

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
    # socket.socket.shutdown, not SSLSocket's: the TLS layer stays intact; the reader sees end-of-file
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
            if when is not None and attempt.deadline != float("-inf"):  # brought forward, unless already done
                attempt.deadline = min(attempt.deadline, when)
            heapq.heappush(self._heap, (attempt.deadline, next(self._order), attempt))
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
_current = threading.local()  # the attempt running on this thread


def _join_current(connection: Any) -> Attempt | None:
    attempt = getattr(_current, "attempt", None)
    if attempt is not None:
        attempt.join(connection)
    return attempt


class _Watched:
    """A connection that works for the attempt running on its thread, and reads answers as CheckedResponse."""

    response_class = CheckedResponse  # http.client's hook for the class that reads the answer
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


class WatchedPool(HTTPConnectionPool):
    ConnectionCls = type("WatchedConnection", (_Watched, HTTPConnection), {})


class WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = type("WatchedTLSConnection", (_Watched, HTTPSConnection), {})


#: what a urllib3 PoolManager (or ProxyManager) builds its pools from, so every connection is watched
WATCHED_POOLS = {"http": WatchedPool, "https": WatchedTLSPool}
