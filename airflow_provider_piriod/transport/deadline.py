"""A deadline for a whole blocking HTTP attempt, from connect to the last byte.

``requests`` only has per-read timeouts: a server that sends one byte of its status line every
second, or an endless run of ``100 Continue``, never trips them. Here one watchdog thread per
process keeps the deadlines of the attempts in flight; when one passes, it shuts the attempt's
socket down, which wakes the blocked read at once. The connection classes below tell the
watchdog which socket belongs to the attempt running on their thread.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager


class Attempt:
    """One attempt's deadline and the sockets it used; ``expired`` once the watchdog acted."""

    __slots__ = ("_lock", "deadline", "expired", "sockets")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def watch(self, sock: Any) -> None:
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def release(self, socks: list[Any]) -> bool:
        """A connection goes back to the pool: stop watching its sockets; True if the attempt already expired."""
        with self._lock:
            self.sockets = [s for s in self.sockets if s not in socks]  # sockets compare by identity
            return self.expired

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the TLS layer must stay intact for the reader,
    # which then sees end-of-file and fails cleanly
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires attempts whose deadline passed."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._heap: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, attempt: Attempt) -> None:
        with self._ready:
            heapq.heappush(self._heap, (attempt.deadline, next(self._order), attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="piriod-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is attempt:  # the watchdog sleeps until the earliest deadline: wake it for a new one
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
                delay = when - time.monotonic()
                if delay > 0:
                    self._ready.wait(delay)
                    continue
                heapq.heappop(self._heap)
                attempt.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()


class attempt_deadline:  # used as a function: ``with attempt_deadline(when) as attempt``
    """Run the block as one attempt: sockets it uses are shut down when ``deadline`` (monotonic) passes."""

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


def watch_socket(sock: Any) -> None:
    """Shut ``sock`` down when the deadline of the attempt running on this thread passes."""
    attempt = getattr(_current, "attempt", None)
    if attempt is not None:
        attempt.watch(sock)


def release_sockets(socks: list[Any]) -> bool:
    """A connection goes back to a pool: its sockets leave this thread's attempt; True if that attempt expired
    (the connection must then be closed, not reused)."""
    attempt = getattr(_current, "attempt", None)
    return attempt is not None and attempt.release(socks)


class _WatchedMixin:
    """Hands the connection's sockets to the attempt on this thread, whether new or reused."""

    sock: Any
    watched: list[Any]

    def _watch(self, sock: Any) -> None:
        if not hasattr(self, "watched"):
            self.watched = []
        if all(sock is not known for known in self.watched):
            self.watched.append(sock)
        watch_socket(sock)

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        self.watched = []  # a new connection: the sockets of an earlier one are gone
        self._watch(sock)  # before a proxy tunnel or TLS is set up on it: those are bounded too
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watch(self.sock)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        for sock in getattr(self, "watched", [self.sock]):
            watch_socket(sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _ReleasingPoolMixin:
    """A connection going back to the pool leaves the attempt that used it, so a late deadline of that
    attempt can never shut down the next request on the same connection; an expired one is closed."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None and release_sockets(getattr(conn, "watched", [])):
            conn.close()
        super()._put_conn(conn)  # type: ignore[misc]


class _WatchedHTTPPool(_ReleasingPoolMixin, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_ReleasingPoolMixin, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """The requests adapter whose connections report their sockets to :func:`attempt_deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # SOCKS proxies bring pool classes of their own
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
