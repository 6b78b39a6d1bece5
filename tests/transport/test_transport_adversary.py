"""Adversarial tests of the blocking urllib3 transport, through the public hook, direct and through a proxy.

A token hidden in a folded first header line or echoed into what the client quotes, chunks framed by a
Content-Length too, chunk sizes that are not plain hex digits, and a late deadline shutting a connection another
thread had just taken from the pool, each once got through; the rest held from the start: trickles end at the
deadline, CONNECT refusals and stalls are bounded, many workers over a server that drops connections get their
own answers and leak nothing, and ``Attempt.sent`` says whether the whole request left.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import threading
import time

import pytest
from urllib3 import HTTPConnectionPool

from airflow_provider_piriod.exceptions import PiriodError, PiriodNetworkError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from tests.hostile import TOKEN, Conn, Request, bounded, chain, connect, leaked, reset

pytestmark = pytest.mark.usefixtures("no_environment_proxies")

ROUTES = ["direct", "proxied"]


def customer(customer_id: str) -> dict[str, str]:
    return {"id": customer_id, "name": customer_id.upper()}


def asked(request: Request) -> str:
    return request.path.split("/")[2]


def token_of(request: Request) -> bytes:
    return request.headers["authorization"].split(" ", 1)[1].encode()


def use_route(monkeypatch: pytest.MonkeyPatch, server, route: str, **extra) -> None:
    """Straight to the server, or through it as a plain-http proxy (it answers absolute-form targets)."""
    if route == "proxied":
        monkeypatch.setenv("HTTP_PROXY", server.url)
        extra["allow_insecure_http"] = True
    connect(monkeypatch, server, **extra)


# ----------------------------------------------------------------------------- defects


@pytest.mark.parametrize("route", ROUTES)
def test_a_token_in_a_folded_first_header_line_is_not_logged_by_urllib3(hostile_server, monkeypatch, caplog, route):
    """A header block whose first line is a continuation (``HTTP/1.1 200 OK\\r\\n  <token>\\r\\n...``) passes
    CheckedResponse (a line starting with a space is taken as a fold), but there is no field for it to continue:
    the email parser records a FirstHeaderLineIsContinuationDefect holding the raw line, and urllib3 logs
    ``Failed to parse headers ... [FirstHeaderLineIsContinuationDefect('  tok_...')]`` at WARNING, token included,
    with a traceback. Such a block should be refused in CheckedResponse (a fold with nothing before it), so
    urllib3 never logs its text; the token must not appear in any log record."""
    caplog.set_level(logging.DEBUG)

    def handle(conn: Conn, request: Request) -> None:
        body = json.dumps(customer(asked(request))).encode()
        conn.send(b"HTTP/1.1 200 OK\r\n  " + token_of(request) + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    assert not leaked(caplog.text), caplog.text[:1500]
    assert not any(leaked(text) for text in map(str, (outcome.error, *chain(outcome.error))))


@pytest.mark.parametrize("echo", ["status line", "chunk size"])
def test_a_token_echoed_by_the_server_is_not_kept_in_the_errors_context_chain(hostile_server, monkeypatch, echo):
    """The hook's error is redacted, but it is raised ``from None`` inside the ``except``: ``__context__`` still
    holds urllib3's ProtocolError / http.client's BadStatusLine or ValueError (``invalid literal for int() with
    base 16: b'tok_...'``) with the token verbatim. Anything that walks ``__context__`` (error reporters, a
    pickled exception, ``exc.__context__`` in a callback) gets the token. The chain should be cut
    (``__context__`` cleared, or only redacted copies kept) where the typed error is built in attempt.send."""

    def handle(conn: Conn, request: Request) -> None:
        if echo == "status line":
            conn.send(b"HTTP/1.1 2x0 " + token_of(request) + b"\r\n\r\n")
        else:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + token_of(request) + b"\r\n")

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 10).raised(PiriodNetworkError)
    leaks = [f"{type(e).__name__}: {e!r}" for e in chain(error) if leaked(str(e)) or leaked(repr(e))]
    assert not leaks, leaks


@pytest.mark.parametrize("route", ROUTES)
def test_an_answer_with_both_content_length_and_chunked_never_keeps_its_connection(hostile_server, monkeypatch, route):
    """RFC 9112 6.3: both Content-Length and Transfer-Encoding "ought to be handled as an error" (a smuggling or
    splitting attempt: anything framing it by the length, such as a proxy, sees the rest as the next answer).
    Today it is read as chunked and its connection reused for the next request. It should be refused, or at the
    least its connection closed (CheckedResponse.begin: will_close when both are present)."""

    def handle(conn: Conn, request: Request) -> None:
        body = json.dumps(customer(asked(request))).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        conn.send(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, max_retries=0)
    hook = PiriodHook()
    first = bounded(lambda: hook.get_customer("cus_A"), 10)
    if first.error is None:
        bounded(lambda: hook.get_customer("cus_B"), 10)
        assert server.connections == 2, "the connection of a Content-Length + chunked answer was reused"


# ----------------------------------------------------------------------------- what held


@pytest.mark.parametrize("route", ROUTES)
def test_two_content_lengths_that_differ_are_refused_and_nothing_is_left_for_the_next_request(
    hostile_server, monkeypatch, route
):
    late = json.dumps(customer("cus_Y") | {"name": "LEFT OVER"}).encode()
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(late), late)

    def handle(conn: Conn, request: Request) -> None:
        if asked(request) != "cus_X":
            conn.respond(200, customer(asked(request)))
            return
        body = json.dumps(customer("cus_X")).encode()
        lengths = b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body) + len(smuggled))
        conn.send(b"HTTP/1.1 200 OK\r\n" + lengths + body)
        conn.sleep(0.3)
        conn.send(smuggled)

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, timeout=3, max_retries=0)
    hook = PiriodHook()
    bounded(lambda: hook.get_customer("cus_X"), 10).raised(PiriodError)
    time.sleep(0.4)
    assert bounded(lambda: hook.get_customer("cus_Y"), 10).ok().name == "CUS_Y"


TRICKLES = {
    "status line": lambda conn: conn.trickle(b"HTTP/1.1 200 OK\r\n" * 20, 0.2),
    "headers": lambda conn: conn.send(b"HTTP/1.1 200 OK\r\n") and conn.trickle(b"X-A: b\r\n" * 100, 0.2),
    "chunk size": lambda conn: (
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") and conn.trickle(b"0" * 200, 0.2)
    ),
    "body": lambda conn: conn.send(conn.head(200, length=1000)) and conn.trickle(b" " * 1000, 0.2),
    "endless trailers": lambda conn: (
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n")
        and conn.forever(b"X-T: 1\r\n", 0.05)
    ),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("shape", list(TRICKLES))
def test_a_trickle_ends_at_the_deadline(hostile_server, monkeypatch, route, shape):
    server = hostile_server(lambda conn, request: TRICKLES[shape](conn))
    use_route(monkeypatch, server, route, timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    assert "deadline" in str(outcome.raised(PiriodNetworkError))
    assert outcome.elapsed < 6


CONNECT_ANSWERS = {
    "407": lambda conn: conn.send(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
    "502": lambda conn: conn.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
    "trickled 200": lambda conn: conn.trickle(b"HTTP/1.1 200 Connection established\r\n\r\n", 0.2),
    "endless headers": lambda conn: (
        conn.send(b"HTTP/1.1 200 Connection established\r\n") and conn.forever(b"X-A: b\r\n", 0.05)
    ),
}


@pytest.mark.parametrize("answer", list(CONNECT_ANSWERS))
def test_a_connect_tunnel_refused_or_stalled_fails_within_the_deadline_and_never_sees_the_token(
    hostile_server, monkeypatch, answer
):
    server = hostile_server(lambda conn, request: CONNECT_ANSWERS[answer](conn))
    monkeypatch.setenv("HTTPS_PROXY", server.url)
    connect(monkeypatch, "https://api.piriod.example", timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    outcome.raised(PiriodNetworkError)
    assert outcome.elapsed < 6
    assert server.paths() == ["api.piriod.example:443"]
    assert not server.saw(TOKEN)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_workers_over_a_server_dropping_connections_get_their_own_answers_and_leak_nothing(
    hostile_server, monkeypatch, fast_retries
):
    rng, lock = random.Random(7), threading.Lock()

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, customer(asked(request)))
        with lock:
            drop = rng.random() < 0.2
        if drop and conn.sleep(0.005):
            conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=5)
    warm = PiriodHook()  # the watchdog thread and lazy imports, before counting
    warm.get_customer("cus_W")
    warm._transport._route.manager.clear()
    del warm
    gc.collect()
    fds, threads = open_fds(), threading.active_count()
    hook = PiriodHook()
    ids = [f"cus_{n:04d}" for n in range(300)]
    found = bounded(lambda: hook.get_customers(ids, max_workers=32), 20).ok()
    assert [c.id for c in found] == ids
    assert server.connections > 1
    hook._transport._route.manager.clear()
    hook = found = None
    gc.collect()
    settle = time.monotonic() + 3  # the server side (in this process) closes its ends as it sees them go
    while open_fds() > fds and time.monotonic() < settle:
        time.sleep(0.05)
    assert open_fds() <= fds
    assert threading.active_count() <= threads


SENT_CASES = {  # what the server does -> whether the whole request had left
    "reads the request, then resets": (lambda conn, request: reset(conn), True),
    "reads the request, answers half a status line, closes": (
        lambda conn, request: conn.send(b"HTTP/1.") and conn.close(),
        True,
    ),
    "stalls the CONNECT past the deadline": (lambda conn, request: conn.sleep(30), False),
    "refuses the CONNECT": (lambda conn, request: CONNECT_ANSWERS["502"](conn), False),
}


@pytest.mark.parametrize("case", list(SENT_CASES))
def test_attempt_sent_says_whether_the_whole_request_left(hostile_server, monkeypatch, case):
    """A failure with ``sent`` False may be resent; one with ``sent`` True may not (the server may have acted)."""
    from airflow_provider_piriod.transport import attempt

    behave, expected = SENT_CASES[case]
    attempts = []

    class recording(attempt.Attempt):
        def __enter__(self):
            attempts.append(super().__enter__())
            return attempts[-1]

    monkeypatch.setattr(attempt, "Attempt", recording)
    server = hostile_server(behave)
    if "CONNECT" in case:
        monkeypatch.setenv("HTTPS_PROXY", server.url)
        connect(monkeypatch, "https://api.piriod.example", timeout=1, max_retries=0)
    else:
        connect(monkeypatch, server, timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    outcome.raised(PiriodNetworkError)
    assert [attempt.sent for attempt in attempts] == [expected]


@pytest.mark.parametrize("size", ["0x%x", "+%x", "%x_"], ids=["0x prefix", "plus sign", "underscore"])
def test_a_chunk_size_that_is_not_plain_hex_digits_is_refused(hostile_server, monkeypatch, size):
    """RFC 9112 7.1: chunk-size = 1*HEXDIG. http.client reads it with ``int(line, 16)``, which also takes
    ``0x20``, ``+20`` and ``2_0``; a proxy or any strict reader frames the same bytes differently (a classic
    desync lever). Such an answer is refused, not read."""

    def handle(conn: Conn, request: Request) -> None:
        body = json.dumps(customer(asked(request))).encode()
        if size.endswith("_"):  # "2_0": 0x20 bytes, written with an underscore
            body = body.ljust(-(-len(body) // 16) * 16)
            line = b"%x_0" % (len(body) // 16)
        else:
            line = (size % len(body)).encode()
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + line + b"\r\n" + body + b"\r\n0\r\n\r\n")

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    bounded(lambda: PiriodHook().get_customer("cus_A"), 10).raised(PiriodError)


def test_a_late_deadline_never_shuts_the_connection_another_thread_just_took_from_the_pool(hostile_server, monkeypatch):
    """Attempt A gets its answer near its deadline and gives the connection back to the pool; thread B takes it;
    A's deadline passes before B's request has joined it to B. A's answer was whole, so A has let go of the
    connection: the watchdog leaves it alone and B gets its own answer. The pauses below only widen that window."""

    def handle(conn: Conn, request: Request) -> None:
        if asked(request) == "cus_A":
            conn.sleep(0.5)  # A's answer arrives half-way to its 1 s deadline
        conn.respond(200, customer(asked(request)))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=0)
    hook = PiriodHook()
    hook.get_customer("cus_W")  # one connection in the pool, the route built
    released, taken = threading.Event(), threading.Event()
    get_conn, put_conn = HTTPConnectionPool._get_conn, HTTPConnectionPool._put_conn

    def until_expired(attempt) -> None:
        end = time.monotonic() + 3
        while attempt is not None and not attempt.expired and time.monotonic() < end:
            time.sleep(0.01)

    def taking(self, timeout=None):
        conn = get_conn(self, timeout)
        if threading.current_thread().name == "B":
            taken.set()
            until_expired(conn.attempt)  # B holds the connection, not yet joined, while A's deadline passes
        return conn

    def giving_back(self, conn):
        put_conn(self, conn)
        if threading.current_thread().name == "A":
            released.set()
            taken.wait(3)
            until_expired(conn.attempt)

    monkeypatch.setattr(HTTPConnectionPool, "_get_conn", taking)
    monkeypatch.setattr(HTTPConnectionPool, "_put_conn", giving_back)
    results: dict[str, object] = {}

    def run(name: str) -> None:
        if name == "B":
            released.wait(3)
        try:
            results[name] = hook.get_customer(f"cus_{name}").id
        except PiriodError as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,), name=name, daemon=True) for name in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(6)
    assert results.get("B") == "cus_B", results.get("B")
