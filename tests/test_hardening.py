"""Hardening against a hostile or broken server, through the public API only.

Every test talks to raw TCP servers from :mod:`tests.hostile` (loopback, scripted per test) and
asserts the behaviour the provider must have. Calls run under :func:`tests.hostile.bounded`, so a
hang fails in seconds; every server stops on teardown. Timeouts are small (``timeout=1`` or ``2``
in the connection extra; 4 s for the overshoot test) and backoff is in milliseconds (``fast_retries``).
No verdict depends on the machine's speed: a server that must be cut short by a deadline stalls or
trickles far longer than the deadline plus ``OVERSHOOT``, the room a loaded machine gets.

Sections follow the hardening list: 1 the token never leaves the configured origin, 2 the token
never appears in error text or logs (and messages are capped), 3 a deadline before the body,
4 compressed bodies that never decode, 5 deadline overshoot, 6 decompression bombs, 7 endless
pages, 8 silent partial results, 9 fail fast, 10 untyped exceptions, 11 NDJSON export.
"""

from __future__ import annotations

import json
import resource
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAuthError,
    PiriodError,
    PiriodNetworkError,
    PiriodNotFoundError,
    PiriodResponseError,
)
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator
from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor
from tests.hostile import (
    EMPTY_STORED_BLOCK,
    GZIP_FNAME,
    TOKEN,
    Conn,
    HostileServer,
    HostileServers,
    Outcome,
    Request,
    bounded,
    connect,
    exception_texts,
    gzip_bytes,
    gzip_header,
    leaked,
    logs_fixture,
    repeat,
    stacked_gzip_bomb,
)

pytestmark = pytest.mark.timeout(90)  # backstop only: every call below is bounded far tighter

#: a call bounded by its deadline may end this much after it (a loaded machine's scheduling, tenfold); every
#: server below that must be cut short stalls or trickles for far longer than the deadline plus this
OVERSHOOT = 2.0
#: how long a bounded call may run before the test calls it a hang (far beyond any bound it is held to)
HANG = 20.0

A = {"id": "cus_A", "name": "Alfa SpA", "status": "active"}
B = {"id": "cus_B", "name": "Beta Ltda", "status": "active"}
C = {"id": "cus_C", "name": "Gamma SA", "status": "pending"}
D = {"id": "cus_D", "name": "Delta EIRL", "status": "active"}
CUSTOMERS = {c["id"]: c for c in (A, B, C, D)}


@pytest.fixture(autouse=True)
def _quick_backoff(fast_retries):
    """Retry backoff in milliseconds."""


@pytest.fixture
def hostile_server():
    """``hostile_server(handler)`` starts a loopback server; all of them stop when the test ends."""
    with HostileServers() as make:
        yield make


@pytest.fixture
def logs(caplog, capfd):
    return logs_fixture(caplog, capfd)


def page(results, next_url=None, count=None) -> dict:
    return {"count": len(results) if count is None else count, "next": next_url, "previous": None, "results": results}


def customer_handler(conn: Conn, request: Request) -> None:
    """``/customers/<id>/`` for the four known customers, 404 otherwise."""
    customer_id = request.path.removeprefix("/customers/").strip("/")
    if customer_id in CUSTOMERS:
        conn.respond(200, CUSTOMERS[customer_id])
    else:
        conn.respond(404, {"detail": "Not found."})


# ----------------------------------------------------------------------------- the clients


def sync_ids(**kwargs) -> list[str]:
    kwargs.setdefault("page_size", 2)
    kwargs.setdefault("max_workers", 1)
    return [c.id for c in PiriodHook().list_customers({}, **kwargs)]


def async_ids(page_size: int = 2) -> list[str]:
    async def run():
        async with PiriodAsyncHook() as hook:
            return [c["id"] async for c in hook.iter_customer_json({}, page_size=page_size)]

    return _async_value(run)


def _async_value(make_coro):
    """Run a coroutine in a fresh loop (callers run this inside ``bounded``, in its own thread)."""
    import asyncio

    return asyncio.run(make_coro())


def async_get(customer_id: str = "cus_A"):
    async def run():
        async with PiriodAsyncHook() as hook:
            return await hook.get_customer_json(customer_id)

    return _async_value(run)


LIST_CLIENTS = {"sync": sync_ids, "async": async_ids}


def list_with(client: str, seconds: float = HANG) -> Outcome:
    return bounded(LIST_CLIENTS[client], seconds)


# ============================================================================= 0. control: the toolkit itself


def test_control_a_well_behaved_server_works_through_every_client(hostile_server, monkeypatch):
    """If this fails, the failures below say nothing about the provider."""

    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/":
            number = int(request.param("page") or 1)
            results = [[A, B], [C, D]][number - 1]
            link = f"{conn.server.url}/customers/?page=2&page_size=2" if number == 1 else None
            conn.respond(200, page(results, link, count=4))
        elif request.path == "/customers/cus_C/":  # gzip-encoded, sent at once
            conn.respond(200, gzip_bytes(json.dumps(C).encode()), [("Content-Encoding", "gzip")])
        else:
            customer_handler(conn, request)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    assert bounded(lambda: PiriodHook().get_customer("cus_A").to_json(), HANG).ok() == A
    assert bounded(lambda: PiriodHook().get_customer("cus_C").to_json(), HANG).ok() == C
    assert bounded(lambda: async_get("cus_C"), HANG).ok() == C
    assert [
        c.id for c in bounded(lambda: PiriodHook().get_customers(["cus_B", "cus_A"], max_workers=2), HANG).ok()
    ] == ["cus_B", "cus_A"]
    assert bounded(sync_ids, HANG).ok() == ["cus_A", "cus_B", "cus_C", "cus_D"]
    assert bounded(lambda: sync_ids(max_workers=4), HANG).ok() == ["cus_A", "cus_B", "cus_C", "cus_D"]
    assert bounded(async_ids, HANG).ok() == ["cus_A", "cus_B", "cus_C", "cus_D"]
    assert bounded(_poke, HANG).ok().is_done is True
    ok, message = bounded(lambda: PiriodHook().test_connection(), HANG).ok()
    assert ok, message
    assert server.saw(f"Token {TOKEN}")  # the recorder sees the Authorization header
    assert server.requests[0].headers["x-simple-workspace"] == "acc_hostile01"
    assert server.errors == []


# ============================================================================= 1. the token stays home

# `next` values that must never make the hook talk to anything but the configured host:port.
# {host} is the configured 127.0.0.1:port, {evil} the port of a second loopback server.
NEXT_ELSEWHERE = {
    "backslash-before-at": "http://127.0.0.1:{evil}\\@{host}/customers/?page=2",
    "https-evil.example-backslash-at": "https://evil.example\\@{host}/customers/?page=2",
    "localhost-backslash-at": "http://localhost:{evil}\\@{host}/customers/?page=2",
    "double-backslash": "http://{host}\\\\127.0.0.1:{evil}/customers/?page=2",
    "userinfo": "http://user@{host}/customers/?page=2",
    "userinfo-like-a-host": "http://127.0.0.1:{evil}@{host}/customers/?page=2",
    "percent-5C-before-at": "http://127.0.0.1:{evil}%5C@{host}/customers/?page=2",
    "percent-5C-after-host": "http://{host}%5C@127.0.0.1:{evil}/customers/?page=2",
    "tab-before-at": "http://127.0.0.1:{evil}\t@{host}/customers/?page=2",
    "newline-before-at": "http://127.0.0.1:{evil}\n@{host}/customers/?page=2",
    "nul-before-at": "http://127.0.0.1:{evil}\x00@{host}/customers/?page=2",
    "tab-after-port": "http://{host}\t/customers/?page=2",
    "nul-in-path": "http://{host}/customers/\x00?page=2",
}

# `next` values on the configured origin but for another path: must be refused outright
NEXT_OTHER_PATH = {
    "invoices": "http://{host}/invoices/?page=2",
    "emulator-control": "http://{host}/__emulator__/x",
    "dot-segments": "http://{host}/customers/../invoices/?page=2",
    "encoded-dot-segments": "http://{host}/customers/%2e%2e/invoices/?page=2",
    "a-customer-below-the-list": "http://{host}/customers/cus_A/?page=2",
    "relative-invoices": "/invoices/?page=2",
}


def _two_page_handler(next_template: str, evil: HostileServer | None = None):
    def handle(conn: Conn, request: Request) -> None:
        if request.path != "/customers/":
            conn.respond(404, {"detail": "Not found."})
        elif request.param("page") in (None, "1"):
            host = f"127.0.0.1:{conn.server.port}"
            conn.respond(200, page([A], next_template.format(host=host, evil=evil.port if evil else 9), count=2))
        else:
            conn.respond(200, page([B], None, count=2))

    return handle


def _evil_handler(conn: Conn, request: Request) -> None:
    conn.respond(200, page([B], None, count=2))  # a convincing answer, so a leaking hook carries on happily


@pytest.mark.parametrize("client", LIST_CLIENTS)
@pytest.mark.parametrize("variant", NEXT_ELSEWHERE)
def test_next_link_never_sends_the_token_elsewhere(hostile_server, monkeypatch, client, variant):
    evil = hostile_server(_evil_handler, "evil")
    home = hostile_server(_two_page_handler(NEXT_ELSEWHERE[variant], evil), "home")
    connect(monkeypatch, home, timeout=2, max_retries=0)
    outcome = list_with(client)
    assert not evil.saw(TOKEN), "the token reached another server"
    assert evil.connections == 0 and evil.received == b"", "the hook connected to another server"
    assert set(home.paths()) <= {"/customers/"}, f"requests for other paths reached the server: {home.paths()}"
    if outcome.error is None:  # rebuilt safely on the configured origin and the same path
        assert outcome.value == ["cus_A", "cus_B"]
    else:
        outcome.raised(PiriodResponseError)


@pytest.mark.parametrize("client", LIST_CLIENTS)
@pytest.mark.parametrize("variant", NEXT_OTHER_PATH)
def test_next_link_to_another_path_is_refused(hostile_server, monkeypatch, client, variant):
    home = hostile_server(_two_page_handler(NEXT_OTHER_PATH[variant]), "home")
    connect(monkeypatch, home, timeout=2, max_retries=0)
    outcome = list_with(client)
    outcome.raised(PiriodResponseError)
    assert home.paths() == ["/customers/"], f"requests for other paths reached the server: {home.paths()}"


# ============================================================================= 2. the token in error text


def escaped(text: str) -> str:
    """``text`` with every third character written as a JSON ``\\uXXXX`` escape."""
    return "".join(f"\\u{ord(ch):04x}" if i % 3 == 0 else ch for i, ch in enumerate(text))


def html_with_token_at(offset: int) -> bytes:
    head = b"<html><head><title>Bad gateway</title></head><body><p>"
    body = head + b"x" * (offset - len(head)) + TOKEN.encode() + b"</p></body></html>"
    assert body.index(TOKEN.encode()) == offset
    return body


# name: (status, body, extra headers, reason phrase)
TOKEN_ECHOES = {
    "reason-phrase-500": (500, "<html>oops</html>", [("Content-Type", "text/html")], TOKEN),
    "reason-phrase-401": (401, {"detail": "Invalid token."}, [], TOKEN),
    "reason-phrase-404": (404, {"detail": "Not found."}, [], f"Not Found {TOKEN}"),
    "redirect-location-userinfo": (302, b"", [("Location", f"http://{TOKEN}@x/")], None),
    "redirect-location-user-and-password": (302, b"", [("Location", f"http://u:{TOKEN}@x.example/")], None),
    "redirect-location-hostname": (302, b"", [("Location", f"http://{TOKEN}.example/")], None),
    "u-escaped-detail-400": (400, '{"detail": "bad token ' + escaped(TOKEN) + '"}', [], None),
    "u-escaped-detail-401": (401, '{"detail": "bad token ' + escaped(TOKEN) + '"}', [], None),
    "u-escaped-detail-500": (500, '{"detail": "bad token ' + escaped(TOKEN) + '"}', [], None),
    "u-escaped-field-errors-400": (400, '{"name": ["bad ' + escaped(TOKEN) + '"]}', [], None),
    "u-escaped-list-400": (400, '["bad ' + escaped(TOKEN) + '"]', [], None),
    "html-token-at-byte-110-200": (200, html_with_token_at(110), [("Content-Type", "text/html")], None),
    "html-token-at-byte-110-503": (503, html_with_token_at(110), [("Content-Type", "text/html")], None),
    "html-token-at-byte-104-200": (200, html_with_token_at(104), [("Content-Type", "text/html")], None),
}


def _echo_handler(status, body, headers, reason):
    def handle(conn: Conn, request: Request) -> None:
        conn.respond(status, body, headers, reason=reason)

    return handle


@pytest.mark.parametrize("case", TOKEN_ECHOES)
def test_token_echoed_by_the_server_never_appears_in_errors_logs_or_test_connection(
    hostile_server, monkeypatch, logs, case
):
    server = hostile_server(_echo_handler(*TOKEN_ECHOES[case]))
    connect(monkeypatch, server, timeout=2, max_retries=1)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)
    ok, message = bounded(lambda: PiriodHook().test_connection(), HANG).ok()
    async_error = bounded(lambda: async_get("cus_A"), HANG).raised(PiriodError)
    assert not ok
    texts = {
        **{f"sync {k}": v for k, v in exception_texts(error).items()},
        **{f"async {k}": v for k, v in exception_texts(async_error).items()},
        "test_connection message": message,
        "logs": logs(),
    }
    assert_no_leak(texts)


def assert_no_leak(texts: dict[str, str]) -> None:
    found = [name for name, text in texts.items() if leaked(text)]
    assert not found, f"the token (or an 8-character piece of it) appears in: {', '.join(found)}"


def _next_value_handler(make_next):
    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/" and request.param("page") is None:
            body = json.dumps(page([A], None, count=2)).replace(
                '"next": null', f'"next": {json.dumps(make_next(conn))}'
            )
            conn.respond(200, body)
        else:
            conn.respond(404, {"detail": "Not found."})

    return handle


TOKEN_IN_NEXT = {
    "in-the-path": lambda conn: f"http://127.0.0.1:{conn.server.port}/customers/{TOKEN}/?page=2",
    "in-a-dict": lambda conn: {"url": f"/customers/?page=2&t={TOKEN}", "token": TOKEN},
    "in-a-list": lambda conn: [TOKEN],
    "as-a-number-and-text": lambda conn: {"1": TOKEN},
    "userinfo-of-a-refused-link": lambda conn: f"http://{TOKEN}@127.0.0.1:9/customers/?page=2",
    "password-of-a-refused-link": lambda conn: f"http://u:{TOKEN}@127.0.0.1:9/customers/?page=2",
    "hostname-of-a-refused-link": lambda conn: f"http://{TOKEN}.invalid/customers/?page=2",
}


@pytest.mark.parametrize("client", LIST_CLIENTS)
@pytest.mark.parametrize("case", TOKEN_IN_NEXT)
def test_token_in_a_next_link_never_appears_in_errors_or_logs(hostile_server, monkeypatch, logs, client, case):
    server = hostile_server(_next_value_handler(TOKEN_IN_NEXT[case]))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    error = list_with(client).raised(PiriodResponseError)
    assert_no_leak({**exception_texts(error), "logs": logs()})
    assert not any(TOKEN in r.target for r in server.requests), "the token was sent in a URL"


HUGE = 15 * 1024 * 1024
HUGE_BODIES = {
    "json-detail-15MiB": lambda: json.dumps({"detail": "x" * HUGE}),
    "json-field-errors-15MiB": lambda: json.dumps({"name": ["y" * HUGE]}),
    "json-many-fields": lambda: json.dumps({f"field_{i}": [f"message {i}"] for i in range(200_000)}),
    "html-15MiB": lambda: "<html>" + "z" * HUGE + "</html>",
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("case", HUGE_BODIES)
def test_error_messages_are_capped(hostile_server, monkeypatch, client, case):
    body = HUGE_BODIES[case]().encode()
    server = hostile_server(lambda conn, request: conn.respond(400, body))
    connect(monkeypatch, server, timeout=5, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    error = bounded(call, 15).raised(PiriodError)
    assert len(str(error)) <= 1100, f"message of {len(str(error))} characters"
    assert len(repr(error)) <= 1200
    if client == "sync":
        ok, message = bounded(lambda: PiriodHook().test_connection(), 15).ok()
        assert not ok and len(message) <= 1100, f"test_connection message of {len(message)} characters"


# ============================================================================= 3. a deadline before the body


def trickle_status_line(conn: Conn, request: Request) -> None:
    """The status line and headers one byte every 0.2 s, forever."""
    conn.stream((bytes([b]) for b in _endless_head()), delay=0.2)


def _endless_head():
    yield from b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: "
    while True:
        yield from b"abcdefgh"


def endless_continue(conn: Conn, request: Request) -> None:
    """``100 Continue`` interim answers, one every 5 ms, forever."""
    conn.forever(b"HTTP/1.1 100 Continue\r\n\r\n", delay=0.005)


BEFORE_BODY = {"status-line-trickled": trickle_status_line, "endless-100-continue": endless_continue}


def _poke():
    return PiriodCustomerSensor(task_id="wait", customer_id="cus_A", poke_interval=1, timeout=30).poke({})


@pytest.mark.parametrize("max_retries", [0, 1])
@pytest.mark.parametrize("call", ["get_customer", "test_connection", "sensor_poke", "async_get_customer"])
@pytest.mark.parametrize("server_kind", BEFORE_BODY)
def test_deadline_holds_before_the_body(hostile_server, monkeypatch, server_kind, call, max_retries):
    server = hostile_server(BEFORE_BODY[server_kind])
    connect(monkeypatch, server, timeout=1, max_retries=max_retries)
    # timeout per attempt, backoff, overshoot; the server trickles for 30 s, so a deadline that did not hold
    # (a read timeout reset by each byte) would take all of it
    budget = 1 * (max_retries + 1) + 0.05 * max_retries + OVERSHOOT
    if call == "get_customer":
        outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG)
        outcome.raised(PiriodNetworkError)
    elif call == "test_connection":
        outcome = bounded(lambda: PiriodHook().test_connection(), HANG)
        ok, message = outcome.ok()
        assert not ok, message
    elif call == "sensor_poke":
        outcome = bounded(_poke, HANG)
        assert outcome.ok().is_done is False  # a transient failure that outlasts the retries is "not yet"
    else:
        outcome = bounded(lambda: async_get("cus_A"), HANG)
        outcome.raised(PiriodNetworkError)
    assert outcome.elapsed <= budget, f"took {outcome.elapsed:.2f} s, budget {budget:.2f} s"
    assert len(server.requests) == max_retries + 1


# ============================================================================= 4. compressed bodies that never decode


def _compressed(encoding: str, prefix: bytes, chunks, delay: float):
    def handle(conn: Conn, request: Request) -> None:
        head = conn.head(200, [("Content-Encoding", encoding)], close=True)
        if conn.send(head + prefix):
            conn.stream(chunks(), delay=delay)
        conn.close()

    return handle


def _bytewise(data: bytes):
    return lambda: (data[i : i + 1] for i in range(len(data)))


NEVER_DECODING = {
    # gzip header with FLG.FNAME, then a file name that never ends
    "gzip-endless-fname": _compressed("gzip", gzip_header(GZIP_FNAME), lambda: repeat(b"a" * 16), 0.02),
    # empty stored deflate blocks, again and again: bytes arrive, nothing ever decodes
    "gzip-empty-stored-blocks": _compressed("gzip", gzip_header(), lambda: repeat(EMPTY_STORED_BLOCK * 400), 0.01),
    "deflate-empty-stored-blocks": _compressed("deflate", b"\x78\x9c", lambda: repeat(EMPTY_STORED_BLOCK * 400), 0.01),
    # a complete member (a valid customer), then garbage that never ends
    "gzip-garbage-after-member": _compressed(
        "gzip", gzip_bytes(json.dumps(A).encode()), lambda: repeat(b"garbage!" * 4), 0.02
    ),
    # a valid gzip body, one byte every 0.2 s
    "gzip-trickled": _compressed("gzip", b"", _bytewise(gzip_bytes(json.dumps(A).encode())), 0.2),
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("body", NEVER_DECODING)
def test_compressed_bodies_that_never_decode_hit_the_deadline(hostile_server, monkeypatch, body, client):
    server = hostile_server(NEVER_DECODING[body])
    connect(monkeypatch, server, timeout=1, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    cpu_before = time.process_time()
    outcome = bounded(call, HANG)
    cpu = time.process_time() - cpu_before
    outcome.raised(PiriodNetworkError, PiriodResponseError)
    assert outcome.elapsed <= 1 + OVERSHOOT, f"took {outcome.elapsed:.2f} s with timeout=1 (the body lasts 8-30 s)"
    # secondary: waiting for bytes must not spin (process CPU, every thread, server included)
    assert cpu <= 0.6 * outcome.elapsed + 0.3, f"{cpu:.2f} s of CPU in {outcome.elapsed:.2f} s"


# ============================================================================= 5. deadline overshoot


#: the overshoot test's deadline, long enough that a deadline checked only between reads (reads bounded by the
#: timeout) overshoots by more than OVERSHOOT: its gaps are SLOW_TIMEOUT * 0.3, 0.6 and 0.9
SLOW_TIMEOUT = 4.0


def _slow_body(fraction: float):
    interval = fraction * SLOW_TIMEOUT

    def handle(conn: Conn, request: Request) -> None:
        body = json.dumps(A).encode()
        if conn.send(conn.head(200, length=len(body) + 1000)):
            conn.stream(repeat(b" "), delay=interval)  # whitespace is valid JSON padding; it just never ends
        conn.close()

    return handle


def _slow_head_then_body(conn: Conn, request: Request) -> None:
    interval = 0.9 * SLOW_TIMEOUT
    if conn.sleep(interval) and conn.send(conn.head(200, length=1000)):
        conn.stream(repeat(b" "), delay=interval)
    conn.close()


SLOW = {
    "body-byte-every-0.3-timeout": _slow_body(0.3),
    "body-byte-every-0.6-timeout": _slow_body(0.6),
    "body-byte-every-0.9-timeout": _slow_body(0.9),
    "head-at-0.9-timeout-then-byte-every-0.9-timeout": _slow_head_then_body,
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("kind", SLOW)
def test_one_attempt_never_outlasts_the_timeout_by_much(hostile_server, monkeypatch, kind, client):
    """Bytes that arrive before the deadline do not extend it: one attempt ends within OVERSHOOT of its 4 s
    deadline. A read timeout reset by each byte would go on for the 30 s the server trickles; a deadline checked
    only between reads would end at the read after it (7.2 s for the 0.9 kinds)."""
    server = hostile_server(SLOW[kind])
    connect(monkeypatch, server, timeout=SLOW_TIMEOUT, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    outcome = bounded(call, HANG)
    outcome.raised(PiriodNetworkError)
    assert outcome.elapsed <= SLOW_TIMEOUT + OVERSHOOT, (
        f"one attempt took {outcome.elapsed:.2f} s with timeout={SLOW_TIMEOUT:g}"
    )


# ============================================================================= 6. decompression bombs

BOMB_MIB = 256  # decoded size; small enough that a bug costs a few hundred MB, not the machine


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,gzip,gzip"])
def test_a_decompression_bomb_is_refused_without_memory_growth(hostile_server, monkeypatch, client, encoding):
    bomb = stacked_gzip_bomb(BOMB_MIB)
    if encoding.count("gzip") == 3:
        bomb = gzip_bytes(bomb)
    assert len(bomb) < 64 * 1024
    server = hostile_server(lambda conn, request: conn.respond(200, bomb, [("Content-Encoding", encoding)]))
    connect(monkeypatch, server, timeout=10, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        outcome = bounded(call, 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    outcome.raised(PiriodResponseError)
    assert peak < 100 * 1024 * 1024, f"{peak / 2**20:.0f} MiB allocated while reading a {len(bomb)}-byte answer"
    assert rss_growth < 100 * 1024, f"peak RSS grew by {rss_growth / 1024:.0f} MiB"


# ============================================================================= 7. endless pages


def _same_items_forever(count: int):
    """Every page: the same two customers, and a `next` to the following page number."""

    def handle(conn: Conn, request: Request) -> None:
        number = int(request.param("page") or 1)
        conn.respond(200, page([A, B], f"{conn.server.url}/customers/?page={number + 1}&page_size=2", count=count))

    return handle


@pytest.mark.parametrize(("workers", "count"), [(4, 10**9), (8, 10**6), (1, 10**9), (1, 4)])
def test_pages_that_bring_nothing_new_stop_with_bounded_requests(hostile_server, monkeypatch, workers, count):
    server = hostile_server(_same_items_forever(count))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    outcome = bounded(lambda: sync_ids(page_size=2, max_workers=workers), HANG)
    assert len(server.requests) < 100, f"{len(server.requests)} requests"
    if outcome.error is None:
        assert outcome.value == ["cus_A", "cus_B"]
    else:
        outcome.raised(PiriodResponseError)


def test_async_pages_that_bring_nothing_new_stop_with_bounded_requests(hostile_server, monkeypatch):
    server = hostile_server(_same_items_forever(10**9))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    outcome = list_with("async")
    assert len(server.requests) < 100, f"{len(server.requests)} requests"
    if outcome.error is None:
        assert outcome.value == ["cus_A", "cus_B"]
    else:
        outcome.raised(PiriodResponseError)


DISGUISES = {
    "fragment": lambda n: f"page=2&page_size=2#f{n}",
    "junk-parameter": lambda n: f"page=2&page_size=2&x={n}",
    "junk-parameter-first": lambda n: f"x={n}&page=2&page_size=2",
    "repeated-page-parameter": lambda n: "page=2&page_size=2" + "&page=2" * n,
}


def _same_page_in_disguise(disguise):
    """Page 1 then page 2, whose `next` leads back to page 2 under a new spelling every time."""
    served = iter(range(1, 10**9))
    lock = threading.Lock()

    def handle(conn: Conn, request: Request) -> None:
        with lock:
            n = next(served)
        link = f"{conn.server.url}/customers/?{disguise(n)}"
        if request.param("page") in (None, "1"):
            conn.respond(200, page([A, B], link, count=4))
        else:
            conn.respond(200, page([C, D], link, count=4))

    return handle


def _operator_to_file(target: Path):
    return lambda: PiriodCustomerOperator(task_id="t", filters={}, page_size=2, output_path=f"file://{target}").execute(
        {}
    )


@pytest.mark.parametrize("client", ["sync", "async", "operator"])
@pytest.mark.parametrize("disguise", DISGUISES)
def test_a_next_link_back_to_the_same_page_in_disguise_is_refused(
    hostile_server, monkeypatch, tmp_path, disguise, client
):
    server = hostile_server(_same_page_in_disguise(DISGUISES[disguise]))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    target = tmp_path / "out" / "customers.ndjson"
    call = {"sync": sync_ids, "async": async_ids, "operator": _operator_to_file(target)}[client]
    outcome = bounded(call, HANG)
    assert len(server.requests) < 100, f"{len(server.requests)} requests"
    outcome.raised(PiriodResponseError)
    if client == "operator":
        assert not target.exists() and list(target.parent.iterdir()) == []


# ============================================================================= 8. silent partial results


def _wrong_id_for_b(wrong_id):
    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/cus_B/":
            conn.respond(200, {**B, "id": wrong_id})
        else:
            customer_handler(conn, request)

    return handle


WRONG_IDS = ["CUS_B", " cus_B ", "cus_b", "cus_B\u200b", "cus_A"]


@pytest.mark.parametrize("workers", [1, 8])
@pytest.mark.parametrize("ignore_missing", [False, True])
@pytest.mark.parametrize("wrong_id", WRONG_IDS)
def test_get_customers_refuses_an_answer_for_another_id(hostile_server, monkeypatch, wrong_id, ignore_missing, workers):
    server = hostile_server(_wrong_id_for_b(wrong_id))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    outcome = bounded(
        lambda: PiriodHook().get_customers(["cus_A", "cus_B"], max_workers=workers, ignore_missing=ignore_missing), HANG
    )
    outcome.raised(PiriodResponseError)


@pytest.mark.parametrize("wrong_id", WRONG_IDS)
def test_get_customer_refuses_an_answer_for_another_id(hostile_server, monkeypatch, wrong_id):
    server = hostile_server(_wrong_id_for_b(wrong_id))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: PiriodHook().get_customer("cus_B"), HANG).raised(PiriodResponseError)


# ============================================================================= 9. fail fast


def test_get_customers_stops_at_the_first_auth_error(hostile_server, monkeypatch):
    server = hostile_server(lambda conn, request: conn.respond(401, {"detail": "Invalid token."}))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    ids = [f"cus_{i:05d}" for i in range(5000)]
    outcome = bounded(lambda: PiriodHook().get_customers(ids, max_workers=8), HANG)
    outcome.raised(PiriodAuthError)
    time.sleep(0.2)  # anything still in flight lands now
    assert len(server.requests) <= 32, f"{len(server.requests)} requests for a token refused from the first answer"


def test_get_customers_stops_at_the_first_missing_id(hostile_server, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/cus_00000/":
            conn.respond(404, {"detail": "Not found."})
        elif conn.sleep(0.15):  # 2,000 ids 8 at a time: 37 s if the call went on
            conn.respond(200, {"id": request.path.split("/")[2], "name": "slow"})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    ids = [f"cus_{i:05d}" for i in range(2000)]
    outcome = bounded(lambda: PiriodHook().get_customers(ids, max_workers=8), HANG)
    outcome.raised(PiriodNotFoundError)
    time.sleep(0.2)
    assert outcome.elapsed < 10, f"took {outcome.elapsed:.2f} s"
    assert len(server.requests) <= 32, f"{len(server.requests)} requests for 2,000 ids whose first is missing"


# ============================================================================= 10. untyped exceptions

NESTED = "[" * 100_000

BAD_CUSTOMER_BODIES = {
    "deeply-nested-json": NESTED,
    "deeply-nested-object": '{"id": "cus_A", "metadata": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
    "no-id": '{"name": "Alfa SpA"}',
    "id-is-a-number": '{"id": 5}',
    "id-is-a-list": '{"id": ["a"]}',
    "id-is-null": '{"id": null}',
    "created-not-a-date": '{"id": "cus_A", "created": "not a date"}',
    "contacts-not-a-list": '{"id": "cus_A", "contacts": "nobody"}',
    "money-NaN": '{"id": "cus_A", "aggregations": {"sales": NaN}}',
    "money-Infinity": '{"id": "cus_A", "aggregations": {"balance": Infinity}}',
}


@pytest.mark.parametrize("case", BAD_CUSTOMER_BODIES)
def test_unusable_customer_bodies_are_typed_errors(hostile_server, monkeypatch, case):
    body = BAD_CUSTOMER_BODIES[case]
    server = hostile_server(lambda conn, request: conn.respond(200, body))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodResponseError)


@pytest.mark.parametrize("case", ["deeply-nested-json", "deeply-nested-object", "money-NaN", "money-Infinity"])
def test_unusable_bodies_are_typed_errors_in_the_async_hook(hostile_server, monkeypatch, case):
    body = BAD_CUSTOMER_BODIES[case]
    server = hostile_server(lambda conn, request: conn.respond(200, body))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: async_get("cus_A"), HANG).raised(PiriodResponseError)


def test_a_deeply_nested_404_body_is_not_yet_for_the_sensor(hostile_server, monkeypatch):
    server = hostile_server(lambda conn, request: conn.respond(404, NESTED))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodNotFoundError)
    assert bounded(_poke, HANG).ok().is_done is False
    bounded(lambda: async_get("cus_A"), HANG).raised(PiriodNotFoundError)


@pytest.mark.parametrize("status", [400, 401, 500])
def test_deeply_nested_error_bodies_keep_their_type(hostile_server, monkeypatch, status):
    server = hostile_server(lambda conn, request: conn.respond(status, NESTED))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)
    assert error.status_code == status


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize(
    "value", [b"\xb2", b"\xb9", b"1\xb2"], ids=["superscript-2", "superscript-1", "1-superscript-2"]
)
def test_an_odd_content_length_is_a_typed_error(hostile_server, monkeypatch, client, value):
    body = json.dumps(A).encode()

    def handle(conn: Conn, request: Request) -> None:
        conn.send(conn.head(200, [("Content-Length", value)], close=True) + body)
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    bounded(call, HANG).raised(PiriodResponseError, PiriodNetworkError)  # never a bare ValueError


BAD_NEXT = {
    "port-99999": "http://127.0.0.1:99999/customers/?page=2",
    "port-not-a-number": "http://127.0.0.1:abc/customers/?page=2",
    "port-negative": "http://127.0.0.1:-1/customers/?page=2",
    "unclosed-ipv6": "http://[::1/customers/?page=2",
    "ipv6-garbage": "http://[not-an-address]/customers/?page=2",
    "empty-host": "http:///customers/?page=2",
    "not-a-url": "::::",
}


@pytest.mark.parametrize("client", LIST_CLIENTS)
@pytest.mark.parametrize("case", BAD_NEXT)
def test_a_next_link_with_a_bad_port_or_host_is_refused(hostile_server, monkeypatch, client, case):
    server = hostile_server(_next_value_handler(lambda conn: BAD_NEXT[case]))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    list_with(client).raised(PiriodResponseError)
    assert server.paths() == ["/customers/"]


# ============================================================================= 11. NDJSON export


def _raw_list_handler(results_json: str):
    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, '{"count": 1, "next": null, "previous": null, "results": [' + results_json + "]}")

    return handle


@pytest.mark.parametrize("name_json", ['"\\ud800"', '"\\udfff tail"', '"ok \\ud83d\\ude00 then \\udc00"'])
def test_ndjson_export_of_a_lone_surrogate_is_valid_utf8(hostile_server, monkeypatch, tmp_path, name_json):
    server = hostile_server(_raw_list_handler('{"id": "cus_A", "name": ' + name_json + "}"))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    target = tmp_path / "x.ndjson"
    result = bounded(_operator_to_file(target), HANG).ok()
    assert result["count"] == 1
    text = target.read_bytes().decode("utf-8")  # strict: the file must be valid UTF-8
    lines = text.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"id": "cus_A", "name": json.loads(name_json)}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_ndjson_export_refuses_non_finite_numbers(hostile_server, monkeypatch, tmp_path, number):
    server = hostile_server(_raw_list_handler('{"id": "cus_A", "aggregations": {"sales": ' + number + "}}"))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    target = tmp_path / "out" / "x.ndjson"
    bounded(_operator_to_file(target), HANG).raised(PiriodResponseError)
    assert not target.exists() and list(target.parent.iterdir()) == []
