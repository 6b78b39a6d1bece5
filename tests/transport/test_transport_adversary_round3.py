"""Adversarial tests, round 3: the async hook over worker threads, interim answers, the new redaction rule,
the next-link check and the write path, against hostile loopback servers, through the public hooks only.

Every call runs under :func:`tests.hostile.bounded` or :func:`tests.hostile.run_async`. Deadlines are proven
with servers that stall far longer than the hang guard, never with a stopwatch.

A test whose docstring describes a defect failed when written, and the defect is described as it was found;
each was fixed after: a bare CR before a line end hid the fields after it; cancelled or stalled async attempts
held a shared thread pool (and the process's exit); a token spelled in percent escapes, or in UTF-16, survived
redaction; and a create or action whose answer never came was looked up at once, while the server was still
carrying it out, and sent again. The tests that say "Holds" held from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from urllib.parse import unquote

import pytest

from airflow_provider_piriod.exceptions import PiriodAmbiguousWriteError, PiriodError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from airflow_provider_piriod.redaction import redact
from tests.hostile import (
    TOKEN,
    Conn,
    Request,
    async_get,
    bounded,
    chain,
    connect,
    exception_texts,
    leaked,
    page,
    run_async,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("fast_retries", "no_environment_proxies")]

HANG = 10.0


def customer(customer_id: str) -> dict[str, str]:
    return {"id": customer_id, "name": customer_id.upper()}


def asked(request: Request) -> str:
    return request.path.split("/")[2]


def token_of(request: Request) -> str:
    return request.headers["authorization"].split(" ", 1)[1]


def body_of(obj) -> bytes:
    return json.dumps(obj).encode()


def posts(server) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


def all_texts_leak(error: BaseException) -> dict[str, str]:
    out = {}
    for exc in chain(error):
        for name, text in exception_texts(exc).items():
            if leaked(text) or leaked(unquote(text)):
                out[f"{type(exc).__name__}.{name}"] = text[:300]
    return out


def stall_until_stopped(conn: Conn, request: Request) -> None:
    """Read the request, then say nothing until the server stops (far beyond any hang guard)."""
    conn.sleep(60)


# ============================================================================= framing: a bare CR ending a line


def _bare_cr_handler(hidden: bytes):
    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-A: a\r\r\n" % len(body)
            + hidden
            + b"\r\n"
            + body
        )
        conn.close()

    return handle


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize(
    "hidden", [b"Transfer-Encoding: chunked\r\n", b"Content-Length: 3\r\n"], ids=["hides TE", "hides a 2nd CL"]
)
def test_a_header_line_ending_in_a_bare_cr_is_refused(hostile_server, monkeypatch, client, hidden):
    """``X-A: a\\r\\r\\n``: the framing check strips every trailing CR and LF (``rstrip(b"\\r\\n")``) before it
    looks for a bare CR, so this line passes; but http.client's email parser splits ``\\r\\r\\n`` into ``\\r`` and
    an empty line, ends the header block there and takes every field after it for body. A Transfer-Encoding (or
    a second, different Content-Length) after it is thus invisible to the CL+TE / two-lengths checks, while a
    strict peer (a proxy) sees it: two readers frame the same bytes differently. The answer must be refused
    (PiriodError), as a bare CR inside a line already is."""
    server = hostile_server(_bare_cr_handler(hidden))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    bounded(call, HANG).raised(PiriodError)


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_token_after_a_bare_cr_line_end_is_not_logged_by_urllib3(hostile_server, monkeypatch, logs, client):
    """The same ``\\r\\r\\n`` line end, then a header echoing the token: urllib3's ``assert_header_parsing`` logs
    "Failed to parse headers ... unparsed data: '<the fields after it>'" at WARNING, token included, before the
    provider sees anything (round 1 closed this hole for a folded first line only). Expected: refused before
    urllib3 logs it, or nothing of the token in the logs."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-A: a\r\r\nX-Echo: %s\r\n\r\n"
            % (len(body), token_of(request).encode())
            + body
        )
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    bounded(call, HANG)
    assert not leaked(logs()), logs()[-800:]


# ============================================================================= interim answers


INTERIM_MIXES = {
    "103 declaring a Content-Length": b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </a>\r\n\r\n",
    "103 declaring chunked": b"HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n",
    "100, 102, 103, 100": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
    ),
    "103 with Connection: close": b"HTTP/1.1 103 Early Hints\r\nConnection: close\r\n\r\n",
    "two 103s, bare LF": b"HTTP/1.1 103 Early Hints\nLink: </a>\n\nHTTP/1.1 103 Early Hints\n\n",
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("mix", list(INTERIM_MIXES))
def test_interim_mixes_before_a_good_final_answer_give_the_object_and_never_desync(
    hostile_server, monkeypatch, client, mix
):
    """Holds: interim answers (framing fields in them included) are skipped; the final answer's own framing
    counts; a second request on the same hook gets its own answer."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(INTERIM_MIXES[mix] + conn.head(200, length=len(body)) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    if client == "sync":
        hook = PiriodHook()
        assert bounded(lambda: hook.get_customer("cus_A"), HANG).ok().id == "cus_A"
        assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().id == "cus_B"
    else:

        async def two():
            async with PiriodAsyncHook() as hook:
                return await hook.get_customer_json("cus_A"), await hook.get_customer_json("cus_B")

        one, two_ = run_async(two, HANG).ok()
        assert (one["id"], two_["id"]) == ("cus_A", "cus_B")


BAD_INTERIM = {
    "folded first line": b"HTTP/1.1 103 Early Hints\r\n  folded\r\n\r\n",
    "bare CR inside": b"HTTP/1.1 103 Early Hints\r\nLink: a\rX: b\r\n\r\n",
    "bare CR at line end": b"HTTP/1.1 103 Early Hints\r\nLink: a\r\r\nX: b\r\n\r\n",
    "no colon": b"HTTP/1.1 103 Early Hints\r\nnot a field\r\n\r\n",
    "lenient status": b"HTTP/1.1 +103 Early Hints\r\n\r\n",
    "NUL": b"HTTP/1.1 103 Early Hints\r\nLink: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("bad", list(BAD_INTERIM))
def test_a_malformed_interim_block_is_refused(hostile_server, monkeypatch, bad):
    """A header block a strict peer refuses must be refused in an interim answer as in a final one."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(BAD_INTERIM[bad] + conn.head(200, length=len(body)) + body)
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_103_then_a_final_answer_framed_two_ways_is_refused_and_never_desyncs(hostile_server, monkeypatch, client):
    """Holds: a 103, then a 200 with Content-Length and chunked, then a smuggled answer: refused (or right), and
    the next request gets its own answer."""

    def handle(conn: Conn, request: Request) -> None:
        if asked(request) == "cus_B":
            conn.respond(200, customer("cus_B"))
            return
        body = body_of(customer("cus_A"))
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        fake = body_of({"id": "cus_B", "name": "SMUGGLED"})
        conn.send(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked)
            + chunked
            + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(fake)
            + fake
        )

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    if client == "sync":
        hook = PiriodHook()
        first = bounded(lambda: hook.get_customer("cus_A"), HANG)
        assert first.error is None or isinstance(first.error, PiriodError)
        assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().name == "CUS_B"
    else:

        async def two():
            async with PiriodAsyncHook() as hook:
                with contextlib.suppress(PiriodError):
                    await hook.get_customer_json("cus_A")
                return await hook.get_customer_json("cus_B")

        assert run_async(two, HANG).ok()["name"] == "CUS_B"


def _head_of(total: int) -> bytes:
    """103 answers, then a 200's head, together exactly ``total`` bytes (each line under http.client's 64 KiB)."""
    final = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    block_start, block_end = b"HTTP/1.1 103 Early Hints\r\n", b"\r\n"
    out = b""
    budget = total - len(final % 99)
    while budget > 0:
        room = budget - len(block_start) - len(block_end)
        lines = b""
        for _ in range(90):
            if room <= 0:
                break
            size = min(60000, room)
            if size < 8:  # pad the previous line instead
                break
            line = b"X-P: " + b"p" * (size - 7) + b"\r\n"
            lines += line
            room -= len(line)
        block = block_start + lines + block_end
        if len(block) > budget:
            raise AssertionError("bad arithmetic")
        out += block
        budget -= len(block)
        if 0 < budget < len(block_start) + len(block_end) + 8:
            # fold the remainder into the last line of this block
            out = out[: -len(block_end) - 2] + b"p" * budget + b"\r\n" + block_end
            budget = 0
    return out + final


@pytest.mark.parametrize("extra", [0, 1], ids=["exactly 1 MiB", "1 MiB + 1"])
def test_header_blocks_exactly_at_the_cap_are_read_and_one_byte_more_is_refused(hostile_server, monkeypatch, extra):
    """Holds: interim and final header blocks of exactly 1 MiB in all are read; one byte more is refused."""
    from airflow_provider_piriod.transport.framing import MAX_HEAD_BYTES

    body = body_of(customer("cus_A"))
    head = _head_of(MAX_HEAD_BYTES + extra) % len(body)
    assert len(head) == MAX_HEAD_BYTES + extra

    server = hostile_server(lambda conn, request: conn.send(head + body))
    connect(monkeypatch, server, timeout=5, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 20)
    if extra:
        outcome.raised(PiriodError)
    else:
        assert outcome.ok().id == "cus_A"


# ============================================================================= the async hook over worker threads


def test_a_cancelled_async_request_frees_its_worker_for_other_hooks(hostile_server, monkeypatch):
    """Triggers get cancelled (deferral timeouts, triggerer shutdown, a DAG run marked failed). A cancelled
    ``await hook.get_customer_json()`` leaves its attempt running in the module-wide worker pool (64 threads,
    shared by every PiriodAsyncHook in the process) until the connection's timeout. With a 60 s timeout (the
    default is 30 s, up to 3600 s is allowed), 64 cancelled calls against a stalled workspace leave every
    worker busy: a new hook on another, healthy connection then waits behind them. Expected: cancelling the
    awaiting coroutine ends its attempt (shuts its socket, as the deadline would), so the new call answers."""
    slow = hostile_server(stall_until_stopped, name="slow")
    fast = hostile_server(lambda conn, request: conn.respond(200, customer(asked(request))), name="fast")
    connect(monkeypatch, slow, "piriod_slow", timeout=60, max_retries=0)
    connect(monkeypatch, fast, "piriod_fast", timeout=5, max_retries=0)

    async def run():
        async with PiriodAsyncHook("piriod_slow") as hook:
            tasks = [asyncio.create_task(hook.get_customer_json(f"cus_{i}")) for i in range(64)]
            while len(slow.requests) < 64:
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        async with PiriodAsyncHook("piriod_fast") as other:
            return await other.get_customer_json("cus_OK")

    # the slow server's 64 requests arriving is bounded by the guard too: they go out at once
    assert run_async(run, 20).ok()["id"] == "cus_OK"


def test_stalled_async_hooks_of_one_connection_do_not_starve_another_connection(hostile_server, monkeypatch):
    """The triggerer runs many triggers in one process. 64 triggers polling a stalled workspace (timeout 60 s)
    take every thread of the shared pool, so a trigger on another, healthy connection cannot even start its
    request until one of them times out. Expected: one connection's stalled requests never hold another
    connection's request back (a pool per hook or per connection, or a pool that grows)."""
    slow = hostile_server(stall_until_stopped, name="slow")
    fast = hostile_server(lambda conn, request: conn.respond(200, customer(asked(request))), name="fast")
    connect(monkeypatch, slow, "piriod_slow", timeout=60, max_retries=0)
    connect(monkeypatch, fast, "piriod_fast", timeout=5, max_retries=0)

    async def one_slow(i: int):
        async with PiriodAsyncHook("piriod_slow") as hook:
            return await hook.get_customer_json(f"cus_{i}")

    async def run():
        tasks = [asyncio.create_task(one_slow(i)) for i in range(70)]
        try:
            while len(slow.requests) < 64:
                await asyncio.sleep(0.05)
            async with PiriodAsyncHook("piriod_fast") as other:
                return await other.get_customer_json("cus_OK")
        finally:
            for task in tasks:
                task.cancel()

    assert run_async(run, 20).ok()["id"] == "cus_OK"


def test_the_event_loop_keeps_running_while_100_async_requests_are_stalled(hostile_server, monkeypatch):
    """Holds: 100 concurrent requests (one loop, 100 hooks) stalled by the server; the server answers only once a
    heartbeat coroutine on the same loop has ticked 50 times, so a blocked loop would deadlock (the guard)."""
    ticks = threading.Event()

    def handle(conn: Conn, request: Request) -> None:
        if ticks.wait(30):
            conn.respond(200, customer(asked(request)))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=30, max_retries=0)

    async def one(i: int):
        async with PiriodAsyncHook() as hook:
            return await hook.get_customer_json(f"cus_{i}")

    async def heartbeat():
        for _ in range(50):
            await asyncio.sleep(0.01)
        ticks.set()

    async def run():
        results = await asyncio.gather(heartbeat(), *(one(i) for i in range(100)))
        return [r["id"] for r in results[1:]]

    assert run_async(run, 40).ok() == [f"cus_{i}" for i in range(100)]


def test_a_cancelled_request_closes_its_connection_within_the_timeout_and_a_new_hook_works(hostile_server, monkeypatch):
    """Holds: ``asyncio.wait_for`` cancels a stalled retrieve; the worker's attempt still ends at the 1 s
    deadline (the server sees its connection closed long before its 60 s stall ends), the token never appears
    in anything the cancellation raised, and a new hook on the same connection gets its answer."""
    closed = threading.Event()
    state = {"n": 0}

    def handle(conn: Conn, request: Request) -> None:
        state["n"] += 1
        if state["n"] > 1:
            conn.respond(200, customer(asked(request)))
            return
        conn.sock.settimeout(60)
        try:
            if conn.sock.recv(1) == b"":
                closed.set()
        except OSError:
            closed.set()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=0)

    async def run():
        async with PiriodAsyncHook() as hook:
            try:
                await asyncio.wait_for(hook.get_customer_json("cus_A"), 0.2)
            except asyncio.TimeoutError as exc:
                cancelled = exc
        await asyncio.to_thread(closed.wait, 8)
        async with PiriodAsyncHook() as hook:
            return cancelled, await hook.get_customer_json("cus_B")

    cancelled, second = run_async(run, HANG).ok()
    assert closed.is_set(), "the cancelled attempt's connection was still open after 8 s (timeout 1 s)"
    assert second["id"] == "cus_B"
    assert not any(leaked(repr(e)) for e in chain(cancelled))


def test_leaving_async_with_while_another_task_is_mid_request(hostile_server, monkeypatch):
    """Holds: a task is mid-request when the ``async with`` block that opened the hook ends; it still gets its
    answer (or a PiriodError), never an unrelated client exception, and the hook refuses later calls plainly."""
    release = threading.Event()

    def handle(conn: Conn, request: Request) -> None:
        release.wait(5)
        conn.respond(200, customer(asked(request)))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=5, max_retries=0)

    async def run():
        async with PiriodAsyncHook() as hook:
            task = asyncio.create_task(hook.get_customer_json("cus_A"))
            while not server.requests:
                await asyncio.sleep(0.01)
        release.set()
        try:
            result = await task
        except PiriodError as exc:
            result = exc
        try:
            await hook.get_customer_json("cus_B")
        except RuntimeError as exc:
            later = exc
        return result, later

    result, later = run_async(run, HANG).ok()
    assert isinstance(result, PiriodError) or result["id"] == "cus_A", result
    assert "async with" in str(later)


def test_server_date_is_the_date_of_the_last_answer(hostile_server, monkeypatch):
    """Holds: ``server_date`` is the Date header of the last answer of the hook."""
    dates = iter(["Tue, 08 Dec 2026 04:00:00 GMT", "Tue, 08 Dec 2026 05:00:00 GMT"])

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, customer(asked(request)), [("Date", next(dates))])

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)

    async def run():
        async with PiriodAsyncHook() as hook:
            await hook.get_customer_json("cus_A")
            first = hook.transport.server_date
            await hook.get_customer_json("cus_B")
            return first, hook.transport.server_date

    assert run_async(run, HANG).ok() == ("Tue, 08 Dec 2026 04:00:00 GMT", "Tue, 08 Dec 2026 05:00:00 GMT")


CONNECT_PROXIES = {
    "stalls": stall_until_stopped,
    "407 echoing the request": lambda conn, request: conn.respond(
        407, request.raw.decode("latin-1"), [("Proxy-Authenticate", "Basic")], reason=request.raw[:200]
    ),
    "200 then silence": lambda conn, request: (
        conn.send(b"HTTP/1.1 200 Connection established\r\n\r\n") and conn.sleep(60)
    ),
    "200 then plain http": lambda conn, request: (
        conn.send(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        and conn.sleep(60)
    ),
    "103 instead of 200": lambda conn, request: conn.send(b"HTTP/1.1 103 Early Hints\r\n\r\n") and conn.sleep(60),
}


@pytest.mark.parametrize("proxy", list(CONNECT_PROXIES))
def test_the_async_hook_through_a_hostile_connect_proxy_fails_within_the_deadline(
    hostile_server, monkeypatch, logs, proxy
):
    """Holds: HTTPS_PROXY from the environment is used by the async hook too; a hostile CONNECT proxy ends in a
    PiriodError within the deadline (the proxy stalls far longer), the token never reaches the proxy and is in
    no error or log."""
    server = hostile_server(CONNECT_PROXIES[proxy], name="proxy")
    monkeypatch.setenv("HTTPS_PROXY", server.url)
    connect(monkeypatch, "https://api.piriod.test", timeout=1, max_retries=0)
    error = bounded(lambda: async_get("cus_A"), HANG).raised(PiriodError)
    assert server.requests and server.requests[0].method == "CONNECT", "the proxy was not used"
    assert not server.saw(TOKEN)
    assert not all_texts_leak(error)
    assert not leaked(logs())


# ============================================================================= redaction


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize(
    "form",
    ["all percent-encoded", "half percent-encoded", "percent-encoded prefix"],
)
def test_a_token_quoted_percent_encoded_in_a_detail_is_redacted(hostile_server, monkeypatch, client, form):
    """The redaction rule says the token *and its percent-encoding* are removed, and the next-link check treats
    ``%74%6F%6B...`` as the token (every server and proxy decodes it). But ``quote(token)`` of an alphanumeric
    token is the token itself, so a server quoting the token percent-encoded (as a URL it refuses, say) in its
    ``detail`` gets it into the error message and ``detail``: decoded, it is the token. Expected: no piece of the
    token, decoded or not, in any text of the error."""

    def encode(text: str) -> str:
        return "".join(f"%{ord(c):02X}" for c in text)

    def handle(conn: Conn, request: Request) -> None:
        token = token_of(request)
        quoted = {
            "all percent-encoded": encode(token),
            "half percent-encoded": token[:10] + encode(token[10:]),
            "percent-encoded prefix": encode(token[:16]),
        }[form]
        conn.respond(401, {"detail": f"Invalid token in https://x.example/?key={quoted}"})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    error = bounded(call, HANG).raised(PiriodError)
    assert not all_texts_leak(error), all_texts_leak(error)


def test_redaction_pure_cases():
    """Holds: runs of 8+ token characters in any case, around length-changing characters ('İ'), are cut;
    7-character pieces, and text sharing no 8-character run with the token, are kept."""
    assert leaked("x") is False
    for text in [
        f"İİ {TOKEN[5:20]} İ",
        f"{TOKEN.upper()[3:30]}",
        f"ǅ {TOKEN[:8]}ß{TOKEN[8:16]}",
        f"\u0130{TOKEN}\u0130",
        f"{TOKEN[:12]}\n{TOKEN[12:]}",
    ]:
        assert not leaked(redact(text, TOKEN).lower()), (text, redact(text, TOKEN))
    kept = f"ids: {TOKEN[:7]}-{TOKEN[7:14]}-{TOKEN[14:21]} and cus_{'0' * 20}"
    assert redact(kept, TOKEN) == kept


def test_data_with_token_pieces_passes_through_untouched(hostile_server, monkeypatch):
    """Holds: an object's fields are data, not messages: a field holding 8+ characters of the token (a
    coincidence, or a note someone pasted) is returned as Piriod sent it, by both hooks and by a page walk."""
    note = f"ref {TOKEN[4:20]} / {TOKEN.upper()}"

    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/":
            conn.respond(200, page([{"id": "cus_A", "name": note}]))
        else:
            conn.respond(200, {"id": asked(request), "name": note})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    assert bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).ok().name == note
    assert bounded(lambda: async_get("cus_A"), HANG).ok()["name"] == note
    listed = bounded(lambda: list(PiriodHook().iter_customer_json({})), HANG).ok()
    assert listed[0]["name"] == note


def test_a_walk_of_many_pages_with_4kb_next_links_ends(hostile_server, monkeypatch):
    """Holds: 300 pages, each ``next`` link 4 KB long and full of near-token runs (7 characters of the token,
    again and again): every link is checked (plain and decoded) and followed; the walk ends well within the
    guard."""
    near = TOKEN[:7] + "-"
    pad = (near * 600)[: 4096 - 200]

    def handle(conn: Conn, request: Request) -> None:
        number = int(request.param("page") or "1")
        nxt = f"{conn.server.url}/customers/?page={number + 1}&page_size=1&c={pad}" if number < 300 else None
        conn.respond(200, page([customer(f"cus_{number}")], nxt, 300))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=5, max_retries=0)
    ids = bounded(lambda: [c["id"] for c in PiriodHook().iter_customer_json({}, page_size=1)], 60).ok()
    assert len(ids) == 300


def test_a_huge_error_detail_of_near_token_runs_is_redacted_within_the_guard(hostile_server, monkeypatch):
    """Holds: a 400 whose ``detail`` is 15 MB of runs sharing 8+ characters with the token (each redacted) ends
    within the guard, with no piece of the token in the error."""

    def handle(conn: Conn, request: Request) -> None:
        token = token_of(request)
        conn.respond(400, {"detail": (token[:12] + "x") * (15_000_000 // 13)})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=30, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 40).raised(PiriodError)
    assert not all_texts_leak(error)


# ============================================================================= the next-link check


@pytest.mark.parametrize(
    "form",
    ["upper case", "plus-split percent", "lower-case hex escapes", "token in the fragment-less path query key"],
)
def test_next_links_carrying_the_token_in_other_forms_are_refused(hostile_server, monkeypatch, form):
    """Holds: a ``next`` link carrying the token in any decodable form or case is refused before any request."""

    def encode(text: str) -> str:
        return "".join(f"%{ord(c):02x}" for c in text)

    def handle(conn: Conn, request: Request) -> None:
        token = token_of(request)
        carried = {
            "upper case": f"t={token.upper()}",
            "plus-split percent": f"t={token[:6]}{encode(token[6:14])}{token[14:]}",
            "lower-case hex escapes": f"t={encode(token)}",
            "token in the fragment-less path query key": f"{encode(token[:9])}{token[9:]}=1",
        }[form]
        if request.param("page") in (None, "1"):
            conn.respond(200, page([customer("cus_A")], f"{conn.server.url}/customers/?page=2&{carried}", 2))
        else:
            conn.respond(200, page([customer("cus_B")], None, 2))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: list(PiriodHook().iter_customer_json({})), HANG)
    later = [r.target for r in server.requests[1:]]
    assert not later, f"the link was followed: {later}"


# ============================================================================= writes


def test_a_create_the_server_is_still_processing_is_never_sent_twice(hostile_server, monkeypatch):
    """A POST the server is slow to carry out: the client's deadline (1 s) passes while the server is still
    creating the object (it commits it 1.5 s in). The lookup by write key runs at once, finds nothing yet, and
    the create is sent again: two objects. A lost answer after the request left can only be resolved by a
    lookup that sees everything the first POST did; one made while that POST may still be running cannot say
    "not there". Expected: PiriodAmbiguousWriteError (or the one object), and exactly one POST."""
    store: list[dict] = []
    lock = threading.Lock()

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            with lock:
                first = posts(conn.server) == 1
            obj = {
                "id": f"cus_new{posts(conn.server)}",
                "name": "ACME",
                "metadata": json.loads(request.raw.split(b"\r\n\r\n", 1)[1]).get("metadata", {}),
            }
            if first:
                conn.sleep(1.5)  # still working when the client gives up
            with lock:
                store.append(obj)
            conn.respond(201, obj)
        else:
            with lock:
                found = list(store)
            conn.respond(200, page(found))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=2)
    outcome = bounded(lambda: PiriodHook().create_object("customers", {"name": "ACME"}, write_key="k1"), 20)
    threading.Event().wait(1.0)  # let the first POST's handler commit its object, for the message below
    assert posts(server) == 1, f"{posts(server)} POSTs; objects created: {[o['id'] for o in store]}"
    assert outcome.error is None or isinstance(outcome.error, PiriodAmbiguousWriteError), outcome.error


LOST_AFTER_INTERIM = {
    "103 then close": lambda conn: conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n") and conn.close(),
    "103 then a bare-CR head": lambda conn: (
        conn.send(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 201 Created\r\nX: a\rY: b\r\nContent-Length: 2\r\n\r\n{}")
        and conn.close()
    ),
    "103 then CL and chunked": lambda conn: conn.send(
        b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ),
    "103 flood past the deadline": lambda conn: conn.forever(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", 0.01),
}


@pytest.mark.parametrize("lost", list(LOST_AFTER_INTERIM))
@pytest.mark.parametrize("write", ["create", "action"])
def test_a_write_whose_answer_is_lost_after_an_interim_answer_is_ambiguous_and_sent_once(
    hostile_server, monkeypatch, lost, write
):
    """Holds: a 103 came, then the final answer was lost or malformed; the lookup / read-back fails (503): the
    write raises PiriodAmbiguousWriteError and exactly one POST reached the server."""
    state = {"gets": 0}

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            LOST_AFTER_INTERIM[lost](conn)
            return
        state["gets"] += 1
        if write == "action" and state["gets"] == 1:
            conn.respond(200, {"id": "inv_1", "status": "draft"})
        else:
            conn.respond(503, {"detail": "down"})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=1)
    if write == "create":
        call = lambda: PiriodHook().create_object("customers", {"name": "ACME"}, write_key="k1")  # noqa: E731
    else:
        call = lambda: PiriodHook().run_action("invoices", "inv_1", "finalize")  # noqa: E731
    bounded(call, 20).raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1


def test_an_action_the_server_is_still_processing_is_never_sent_twice(hostile_server, monkeypatch):
    """The same race for an action: the finalize POST outlives the client's 1 s deadline while the server is
    still finalizing (the status flips 1.5 s in). The status read-back runs at once, still sees ``draft``, and
    finalize is sent again. Expected: PiriodAmbiguousWriteError (or the finalized invoice), exactly one POST."""
    state = {"status": "draft"}

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            if posts(conn.server) == 1:
                conn.sleep(1.5)  # still finalizing when the client gives up
            state["status"] = "issued"
            conn.respond(200, {"id": "inv_1", "status": state["status"]})
        else:
            conn.respond(200, {"id": "inv_1", "status": state["status"]})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=2)
    outcome = bounded(lambda: PiriodHook().run_action("invoices", "inv_1", "finalize"), 20)
    assert posts(server) == 1, f"{posts(server)} POSTs of finalize"
    assert outcome.error is None or isinstance(outcome.error, PiriodAmbiguousWriteError), outcome.error


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_token_echoed_in_a_utf16_error_page_is_not_readable_in_the_error(hostile_server, monkeypatch, client):
    """A 502 page in UTF-16 (a proxy's, or a hostile server's) echoing the token: the snippet decodes it as
    UTF-8, so the token is quoted with a NUL between its letters, which no 8-character run matches; a log viewer
    that drops NULs (most do) shows the token. Expected: with the NULs dropped, no piece of the token."""

    def handle(conn: Conn, request: Request) -> None:
        page_ = f"<html>Bad gateway for {token_of(request)}</html>".encode("utf-16-le")
        conn.respond(502, page_, content_type="text/html; charset=utf-16")

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    error = bounded(call, HANG).raised(PiriodError)
    shown = {k: v[:300] for k, v in exception_texts(error).items() if leaked(v.replace("\x00", ""))}
    assert not shown, shown


def test_a_process_whose_async_request_was_cancelled_can_exit(hostile_server, tmp_path):
    """A triggerer shutting down cancels its triggers and exits. The cancelled attempt keeps running in the
    module-level ThreadPoolExecutor, and Python joins every such worker thread at interpreter exit: the process
    cannot exit until the attempt's deadline (the connection's timeout, up to 3600 s). Here the server stalls
    for 60 s (timeout 60 s); the child process, its trigger cancelled and ``asyncio.run`` returned, must exit
    within the 20 s guard."""
    import os
    import subprocess
    import sys

    server = hostile_server(stall_until_stopped)
    script = tmp_path / "child.py"
    script.write_text(
        "import asyncio, json, os\n"
        "from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook\n"
        "async def main():\n"
        "    async with PiriodAsyncHook() as hook:\n"
        "        try:\n"
        "            await asyncio.wait_for(hook.get_customer_json('cus_A'), 1.0)\n"
        "        except asyncio.TimeoutError:\n"
        "            print('cancelled', flush=True)\n"
        "asyncio.run(main())\n"
        "print('loop closed', flush=True)\n"
    )
    from tests.hostile import connection

    env = {**os.environ, "AIRFLOW_CONN_PIRIOD_DEFAULT": json.dumps(connection(server, timeout=60, max_retries=0))}
    env["PYTHONPATH"] = os.pathsep.join([str(os.getcwd()), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the process did not exit within 20 s of its trigger being cancelled; stdout: {out!r}")
    assert b"loop closed" in out, (out, err[-2000:])
