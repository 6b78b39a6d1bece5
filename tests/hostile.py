"""A small hostile-server toolkit for tests: raw TCP servers on loopback, scripted per test.

Not a test module. A :class:`HostileServer` accepts connections on ``127.0.0.1`` and, for each
HTTP request head it reads, calls ``handler(conn, request)``; the handler writes whatever bytes
it likes through :class:`Conn` (well-formed answers, broken ones, trickles, endless streams) and
may close the connection. Every byte received is recorded, so a test can check whether the token
(or any request at all) reached a server.

Everything is bounded in time: endless streams stop when the server stops (on fixture teardown)
or after ``MAX_STREAM_SECONDS`` whatever happens, and :func:`bounded` runs a call in a daemon
thread and fails the test if it has not finished in time, so a hang costs seconds, not the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http
import json
import logging
import secrets
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pytest

#: no stream a handler writes lasts longer than this, even if nobody stops the server
MAX_STREAM_SECONDS = 30.0

WORKSPACE = "acc_hostile01"
#: a token that is easy to spot anywhere (and random, so an 8-character piece of it is too)
TOKEN = "tok_" + secrets.token_hex(16)


# ----------------------------------------------------------------------------- requests received


@dataclass
class Request:
    """One HTTP request head as received (bytes kept raw, so the token can be searched for)."""

    raw: bytes
    method: str
    target: str
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def origin_form(self) -> str:
        """The target without ``http://host:port`` when a client sent it to this server as its proxy."""
        if self.target.startswith("http://"):
            rest = self.target[len("http://") :]
            return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return self.target

    @property
    def path(self) -> str:
        return self.origin_form.split("?", 1)[0].split("#", 1)[0]

    @property
    def query(self) -> str:
        target = self.origin_form
        return target.split("?", 1)[1].split("#", 1)[0] if "?" in target else ""

    def param(self, name: str) -> str | None:
        from urllib.parse import parse_qs

        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[-1] if values else None


def _parse_head(raw: bytes) -> Request:
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    method, target = [*parts, "", ""][:2]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Request(raw=raw, method=method, target=target, headers=headers)


# ----------------------------------------------------------------------------- one connection


class Conn:
    """The server side of one accepted connection, as a handler sees it."""

    def __init__(self, server: HostileServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.closed = False
        self._buffer = b""
        self.started = time.monotonic()

    # ------------------------------------------------------------------ reading

    def read_request(self, timeout: float = 10.0) -> Request | None:
        """The next request head (and its body, if it declared one); None on EOF, timeout or stop."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            if not self._recv(deadline):
                return None
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        request = _parse_head(head + b"\r\n\r\n")
        length = request.headers.get("content-length", "0")
        length = int(length) if length.isascii() and length.isdigit() else 0
        while len(self._buffer) < length:
            if not self._recv(deadline):
                break
        request.raw += self._buffer[:length]
        self._buffer = self._buffer[length:]
        self.server._record_request(request)
        return request

    def _recv(self, deadline: float) -> bool:
        while not self.server.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(min(0.2, remaining))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return False
            if not data:
                return False
            self.server._record_bytes(data)
            self._buffer += data
            return True
        return False

    # ------------------------------------------------------------------ writing

    @property
    def alive(self) -> bool:
        return not self.closed and not self.server.stopping.is_set()

    def send(self, data: bytes) -> bool:
        """Send ``data``; False once the peer went away or the server is stopping."""
        if not self.alive:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def sleep(self, seconds: float) -> bool:
        """Wait, but wake at once when the server stops; False if it did."""
        return not self.server.stopping.wait(seconds) and not self.closed

    def trickle(self, data: bytes, delay: float, step: int = 1) -> bool:
        """Send ``data`` ``step`` bytes at a time, ``delay`` seconds apart."""
        for start in range(0, len(data), step):
            if not self.send(data[start : start + step]) or not self.sleep(delay):
                return False
        return True

    def stream(self, chunks: Iterable[bytes], delay: float = 0.0, max_seconds: float = MAX_STREAM_SECONDS) -> bool:
        """Send chunks (an endless generator is fine) until the peer leaves, the server stops or time is up."""
        stop_at = time.monotonic() + max_seconds
        for chunk in chunks:
            if time.monotonic() > stop_at or not self.send(chunk):
                return False
            if delay and not self.sleep(delay):
                return False
        return True

    def forever(self, chunk: bytes, delay: float, max_seconds: float = MAX_STREAM_SECONDS) -> bool:
        """The same chunk again and again, ``delay`` seconds apart."""
        return self.stream(repeat(chunk), delay, max_seconds)

    def head(
        self,
        status: int = 200,
        headers: Iterable[tuple[str, str | bytes]] = (),
        *,
        reason: str | bytes | None = None,
        content_type: str | None = "application/json",
        length: int | None = None,
        close: bool = False,
    ) -> bytes:
        """An HTTP/1.1 status line and headers, as bytes (values may be bytes for non-ASCII tricks)."""
        if reason is None:
            try:
                reason = http.HTTPStatus(status).phrase
            except ValueError:
                reason = "Whatever"
        out = b"HTTP/1.1 %d " % status + _bytes(reason) + b"\r\n"
        names = set()
        for name, value in headers:
            names.add(name.lower())
            out += _bytes(name) + b": " + _bytes(value) + b"\r\n"
        if content_type and "content-type" not in names:
            out += b"Content-Type: " + _bytes(content_type) + b"\r\n"
        if length is not None and "content-length" not in names:
            out += b"Content-Length: %d\r\n" % length
        if close and "connection" not in names:
            out += b"Connection: close\r\n"
        return out + b"\r\n"

    def respond(
        self,
        status: int = 200,
        body: bytes | str | dict | list = b"",
        headers: Iterable[tuple[str, str | bytes]] = (),
        *,
        reason: str | bytes | None = None,
        content_type: str | None = "application/json",
        close: bool = False,
    ) -> bool:
        """A complete answer with Content-Length (dicts and lists are sent as JSON)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = _bytes(body)
        head = self.head(status, headers, reason=reason, content_type=content_type, length=len(data), close=close)
        sent = self.send(head + data)
        if close:
            self.close()
        return sent

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def repeat(chunk: bytes) -> Iterator[bytes]:
    while True:
        yield chunk


# ----------------------------------------------------------------------------- the server

Handler = Callable[[Conn, Request], Any]


class HostileServer:
    """A loopback TCP server whose answers a test scripts through ``handler(conn, request)``."""

    def __init__(self, handler: Handler | None = None, name: str = "hostile") -> None:
        self.handler = handler or (lambda conn, request: conn.respond(404, {"detail": "Not found."}))
        self.name = name
        self.stopping = threading.Event()
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self.connections = 0
        self._received: list[bytes] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> HostileServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept, name=f"{self.name}-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        deadline = time.monotonic() + 2.0
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    # ------------------------------------------------------------------ what arrived

    @property
    def received(self) -> bytes:
        """Every byte any client sent, in arrival order (across connections)."""
        with self._lock:
            return b"".join(self._received)

    def saw(self, secret: str) -> bool:
        return secret.encode() in self.received

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def _record_bytes(self, data: bytes) -> None:
        with self._lock:
            self._received.append(data)

    def _record_request(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # ------------------------------------------------------------------ serving

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self.stopping.is_set():
                    sock.close()
                    return
                self.connections += 1
                self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), name=f"{self.name}-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Conn(self, sock)
        try:
            while conn.alive:
                request = conn.read_request()
                if request is None:
                    break
                self.handler(conn, request)
        except Exception as exc:  # kept for the test to look at
            self.errors.append(exc)
        finally:
            conn.close()


class HostileServers:
    """Starts servers on demand and stops every one of them on exit (use it in a fixture)::

    with HostileServers() as make:
        server = make(handler)
    """

    def __init__(self) -> None:
        self.started: list[HostileServer] = []

    def __call__(self, handler: Handler | None = None, name: str = "hostile") -> HostileServer:
        server = HostileServer(handler, name).start()
        self.started.append(server)
        return server

    def __enter__(self) -> HostileServers:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for server in self.started:
            server.stop()


# ----------------------------------------------------------------------------- connections


def connection(server: HostileServer | str, *, token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    url = server if isinstance(server, str) else server.url
    conn: dict[str, Any] = {"conn_type": "piriod", "login": WORKSPACE, "password": token, "host": url}
    if extra:
        conn["extra"] = extra
    return conn


def connect(
    monkeypatch: pytest.MonkeyPatch, server: HostileServer | str, conn_id: str = "piriod_default", **extra: Any
) -> None:
    """Point ``conn_id`` (an ``AIRFLOW_CONN_...`` variable) at ``server`` with the given extras."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection(server, **extra)))


def connect_to_a_closed_port(monkeypatch: pytest.MonkeyPatch, conn_id: str = "piriod_default", **extra: Any) -> None:
    """Point ``conn_id`` at a loopback port nothing listens on: every attempt is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connect(monkeypatch, f"http://127.0.0.1:{port}", conn_id, **extra)


# ----------------------------------------------------------------------------- bounded calls


@dataclass
class Outcome:
    """What a bounded call did: its value or the exception it raised, and how long it took."""

    value: Any
    error: BaseException | None
    elapsed: float

    def raised(self, *types: type[BaseException]) -> BaseException:
        """The exception, asserting it is one of ``types`` (a clear message when it is not)."""
        assert self.error is not None, f"expected {_names(types)}, but the call returned {self.value!r:.300}"
        assert isinstance(self.error, types), (
            f"expected {_names(types)}, got {type(self.error).__module__}.{type(self.error).__name__}: "
            f"{str(self.error)[:500]}"
        )
        return self.error

    def ok(self) -> Any:
        if self.error is not None:
            raise AssertionError(
                f"expected a result, got {type(self.error).__name__}: {str(self.error)[:500]}"
            ) from self.error
        return self.value


def _names(types: tuple[type[BaseException], ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def bounded(fn: Callable[[], Any], seconds: float) -> Outcome:
    """Run ``fn`` in a daemon thread; fail the test if it has not finished after ``seconds``.

    A hang therefore fails fast instead of blocking the run (the thread is left behind; the
    servers' teardown closes its sockets, which ends it).
    """
    result: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        _prepare_airflow2_thread()
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the test
            result["error"] = exc
        finally:
            result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the call did not finish within {seconds:g} s (still running: it hangs or loops)", pytrace=False)
    return Outcome(result.get("value"), result.get("error"), result.get("elapsed", time.monotonic() - started))


def _prepare_airflow2_thread() -> None:
    """Airflow 2.11 guards ``execute`` with a thread-local set up only in the thread that imported it."""
    try:
        from airflow.models.baseoperator import ExecutorSafeguard
    except ImportError:  # Airflow 3: no such guard
        return
    if not hasattr(ExecutorSafeguard._sentinel, "callers"):
        ExecutorSafeguard._sentinel.callers = {}


def run_async(make_coro: Callable[[], Any], seconds: float) -> Outcome:
    """``bounded`` for a coroutine: runs it with ``asyncio.run`` in its own thread and loop."""
    return bounded(lambda: asyncio.run(make_coro()), seconds)


# ----------------------------------------------------------------------------- secrets in text


def token_pieces(token: str = TOKEN, size: int = 8) -> list[str]:
    """Every ``size``-character piece of the token (a partial leak, such as a cut-off prefix, is a leak)."""
    return [token[i : i + size] for i in range(len(token) - size + 1)]


def leaked(text: str, token: str = TOKEN) -> bool:
    """True if ``text`` holds the token or any 8-character piece of it."""
    return token in text or any(piece in text for piece in token_pieces(token))


def chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__`` (suppressed or not)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def reset(conn: Conn) -> None:
    """Close with RST (SO_LINGER 0), not FIN."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def exception_texts(exc: BaseException) -> dict[str, str]:
    """Every text an exception carries that may end up in a log, a UI or XCom."""
    import traceback

    texts = {
        "str": str(exc),
        "repr": repr(exc),
        "args": repr(getattr(exc, "args", ())),
        "detail": str(getattr(exc, "detail", "") or ""),
        "errors": repr(getattr(exc, "errors", "") or ""),
        "path": str(getattr(exc, "path", "") or ""),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    return texts


def logs_fixture(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> Callable[[], str]:
    caplog.set_level(logging.DEBUG)
    # httpx logs each request's status line at INFO and httpcore traces raw headers at DEBUG; in a task or
    # the triggerer Airflow's secret masker redacts the token there, as it does for every logger. What the
    # provider writes itself is checked.
    caplog.set_level(logging.INFO, logger="httpcore")
    caplog.set_level(logging.WARNING, logger="httpx")
    captured: list[str] = []

    def text() -> str:
        out, err = capfd.readouterr()
        captured.append(out + err)
        return caplog.text + "".join(captured)

    return text


# ----------------------------------------------------------------------------- compressed bodies


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def gzip_header(flags: int = 0) -> bytes:
    """A gzip member header (RFC 1952): magic, CM=8 (deflate), FLG, MTIME, XFL, OS."""
    return b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00" + b"\x00\xff"


GZIP_FNAME = 0x08
#: a deflate stored block that is not the last one and holds nothing: BFINAL=0 BTYPE=00, LEN=0, NLEN=0xffff
EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"


@lru_cache(maxsize=4)
def stacked_gzip_bomb(decoded_mib: int) -> bytes:
    """``gzip(gzip(zeros))``: a few KB on the wire, ``decoded_mib`` MiB once both layers are undone.

    Built in 1 MiB steps, so building it never holds the decoded size in memory.
    """
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [inner.compress(zeros) for _ in range(decoded_mib)]
    parts.append(inner.flush())
    return gzip_bytes(b"".join(parts))


# ----------------------------------------------------------------------------- sample data and hook calls

A = {"id": "cus_A", "name": "Alfa SpA", "status": "active"}
B = {"id": "cus_B", "name": "Beta Ltda", "status": "active"}
C = {"id": "cus_C", "name": "Gamma SA", "status": "pending"}
D = {"id": "cus_D", "name": "Delta EIRL", "status": "active"}


def page(results: list[Any], next_url: str | None = None, count: int | None = None) -> dict[str, Any]:
    """A Piriod list page (``count`` defaults to the number of results)."""
    return {"count": len(results) if count is None else count, "next": next_url, "previous": None, "results": results}


def sync_ids(page_size: int = 2, max_workers: int = 1) -> list[str]:
    """The ids ``PiriodHook().iter_customer_json`` yields (run it inside :func:`bounded`)."""
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    return [c["id"] for c in PiriodHook().iter_customer_json({}, page_size=page_size, max_workers=max_workers)]


def async_ids(page_size: int = 2) -> list[str]:
    """The ids ``PiriodAsyncHook().iter_customer_json`` yields, in a fresh event loop."""
    from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook

    async def run() -> list[str]:
        async with PiriodAsyncHook() as hook:
            return [c["id"] async for c in hook.iter_customer_json({}, page_size=page_size)]

    return asyncio.run(run())


def async_get(customer_id: str = "cus_A") -> Any:
    """``PiriodAsyncHook().get_customer_json(customer_id)`` in a fresh event loop."""
    from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook

    async def run() -> Any:
        async with PiriodAsyncHook() as hook:
            return await hook.get_customer_json(customer_id)

    return asyncio.run(run())


# ----------------------------------------------------------------------------- requests in flight at once


class InFlight:
    """Counts the requests a handler is answering at once, and holds answers until enough are in flight.

    ``handler = InFlight(until=4).wrap(handler)``: each request waits until ``until`` requests are in flight
    together (then every one of them, and every later request, is answered at once) or until ``stall`` seconds
    pass, a fixed time far beyond any scheduling delay. A client that sends one request at a time never fills
    the gate: its first request waits the whole stall and ``stalled`` is set (the gate then stays open, so the
    failure costs one stall, not one per request). Concurrency is thereby shown by the server, not by a
    stopwatch, and a loaded machine cannot change the verdict. ``peak`` is the most requests ever in flight.
    """

    def __init__(self, until: int, stall: float = 30.0) -> None:
        self.until = until
        self.stall = stall
        self.peak = 0
        self.filled = threading.Event()
        self.stalled = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()

    def wrap(self, handler: Handler) -> Handler:
        def handle(conn: Conn, request: Request) -> Any:
            with self._lock:
                self._in_flight += 1
                self.peak = max(self.peak, self._in_flight)
                if self._in_flight >= self.until:
                    self.filled.set()
            try:
                give_up = time.monotonic() + self.stall
                while not self.filled.wait(0.05):
                    if not conn.alive:
                        return None
                    if time.monotonic() > give_up:
                        self.stalled.set()
                        self.filled.set()  # open for good: one stall is enough to fail the test
                return handler(conn, request)
            finally:
                with self._lock:
                    self._in_flight -= 1

        return handle
