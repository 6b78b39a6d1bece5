"""Deadlines that hold end to end, and behaviour under load, against hostile loopback servers.

Hostile servers on loopback (:mod:`tests.hostile`): a proxy's ``CONNECT`` answer is inside
the attempt's deadline; a deadline that passes late never shuts down a connection another thread took
from the pool; decoding a big body does not block the triggerer's event loop, and what bounds the
decoding is ``max_response_bytes`` and the retries (the deadline cannot cut CPU work short); a
``Retry-After`` of zero (or in the past) is no hot loop; and the first failure of
``get_objects`` stops the requests still in flight. Every call runs under :func:`tests.hostile.bounded`.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow_provider_piriod.exceptions import PiriodError, PiriodNetworkError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from airflow_provider_piriod.protocol import PiriodDecodeError
from tests.hostile import A, B, Conn, Request, bounded, connect

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fast_retries", "no_environment_proxies")]

#: how long a bounded call may run before the test calls it a hang
HANG = 6.0
#: a hostile server stalls or trickles this long, far beyond any deadline below
STALL = 30.0
#: a call bounded by a deadline of a second or two ends within this, however loaded the machine; a call that
#: waited the stall out does not
WITHIN_STALL = STALL / 3
#: a decode made to take this long, wherever it runs
DECODE_STALL = 3.0


def _decimal_bomb(size: int) -> bytes:
    """``size`` bytes of ``1e-400`` literals (subnormal underflow: the JSON codec's slow path, a Decimal each)."""
    n = (size - 40) // 7
    return b'{"id": "cus_A", "x": [' + b",".join([b"1e-400"] * n) + b"]}"


# ----------------------------------------------------------------------------- the deadline covers connect()


def test_an_https_proxy_trickling_its_connect_answer_is_bounded_by_the_deadline(hostile_server, monkeypatch):
    """``HTTPS_PROXY`` from the environment answering ``CONNECT`` one header byte every 0.25 s for 30 s: the
    tunnel is set up inside the attempt's deadline, so one attempt with ``timeout=1`` ends in
    ``PiriodNetworkError`` long before the trickle does (a read timeout alone would wait all 30 s)."""

    def handle(conn: Conn, request: Request) -> None:
        if conn.send(b"HTTP/1.1 200 Connection established\r\nX-Slow: "):
            conn.forever(b"a", 0.25, max_seconds=STALL)

    proxy = hostile_server(handle, name="proxy")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    connect(monkeypatch, "https://127.0.0.1:9", timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), STALL + 10)
    assert [r.method for r in proxy.requests] == ["CONNECT"], "precondition: the request went through the proxy"
    outcome.raised(PiriodNetworkError)
    assert outcome.elapsed < WITHIN_STALL, (
        f"one attempt with timeout=1 took {outcome.elapsed:.2f} s against a {STALL:g} s trickle (proxy CONNECT)"
    )


# ----------------------------------------------------------------------------- a late deadline and the pool


#: the deadline of A and of B; A's answer comes this long into it; B's answer this long after B's request arrived
LATE_TIMEOUT, LATE_A_DELAY, LATE_B_DELAY = 5.0, 2.0, 3.5


def test_a_late_deadline_never_shuts_down_a_pooled_connection_another_thread_reuses(hostile_server, monkeypatch):
    """Attempt A has read its whole body, so its connection is back in the pool while A is still inside its
    deadline; thread B takes that connection. When A's deadline passes, B's healthy request must go on.

    To make the timing deterministic, ``BodyDecoder.finish`` (which runs after the connection went back) is
    wrapped, for A only, to wait until B's request reached the server on A's connection, then to sleep past
    A's deadline. Nothing else is changed. Every step has a second or more to spare: A is answered 2 s into
    its 5 s deadline, B is answered 3.5 s after it arrived, so A's deadline passes in the middle of B's request
    and B still ends about 1.5 s before its own."""
    from airflow_provider_piriod.transport import attempt

    b_request_arrived = threading.Event()

    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/cus_A/":
            conn.sleep(LATE_A_DELAY)
            conn.respond(200, A)  # complete, keep-alive, well within A's deadline
        elif request.path == "/customers/cus_B/":
            b_request_arrived.set()
            conn.sleep(LATE_B_DELAY)  # past A's deadline, well within B's own
            conn.respond(200, B)
        else:
            conn.respond(404, {"detail": "Not found."})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=LATE_TIMEOUT, max_retries=0)
    hook = PiriodHook()
    a_in_window = threading.Event()
    original_finish = attempt.BodyDecoder.finish

    def finish(self):
        if threading.current_thread().name == "attempt-A":
            a_in_window.set()
            b_request_arrived.wait(STALL)
            time.sleep(LATE_TIMEOUT - LATE_A_DELAY + 1)  # past A's deadline while A is still inside its attempt
        return original_finish(self)

    monkeypatch.setattr(attempt.BodyDecoder, "finish", finish)
    results: dict[str, object] = {}

    def run(name, customer_id):
        try:
            results[name] = hook.get_customer(customer_id).id
        except BaseException as exc:
            results[name] = exc

    ta = threading.Thread(target=run, args=("A", "cus_A"), name="attempt-A", daemon=True)
    ta.start()
    assert a_in_window.wait(STALL)
    tb = threading.Thread(target=run, args=("B", "cus_B"), name="attempt-B", daemon=True)
    started_b = time.monotonic()
    tb.start()
    tb.join(STALL)
    ta.join(STALL)
    elapsed_b = time.monotonic() - started_b
    assert server.connections == 1, "precondition: B reused A's pooled connection"
    assert results.get("B") == "cus_B", f"B failed after {elapsed_b:.2f} s: {results.get('B')!r}"


#: A's body: joining its pieces after the connection went back to the pool takes a few tens of ms
RACE_BODY_BYTES = 32 << 20
#: every attempt's deadline; A's last byte is sent RACE_LEAD before it
RACE_TIMEOUT = 0.5
RACE_LEAD = 0.025
#: threads B start fetching this long before A's deadline (until then A reads without competing for the GIL)
RACE_HOT = 0.15
#: pause between two requests of a thread B, so that A's connection, put back meanwhile, is the next one taken
RACE_PAUSE = 0.002
#: rounds of about 0.6 s each, and never more than RACE_BUDGET seconds of them
RACE_ROUNDS = 5
RACE_BUDGET = 3.5


def test_a_late_deadline_never_shuts_down_a_reused_connection_without_patching(hostile_server, monkeypatch):
    """The same guarantee with nothing patched, as a bounded probe: the server sends A's last byte 25 ms before
    A's 0.5 s deadline while threads B (same hook) keep fetching cus_B, so one of them picks up A's
    just-released connection as A's deadline passes. No B request may fail with anything but its own
    deadline. At most 5 rounds within 3.5 s (with the old defect it failed in the first or second round)."""
    body = b'{"id": "cus_A", "name": "Alfa"' + b" " * (RACE_BODY_BYTES - 32) + b"}"
    stop = threading.Event()
    b_on_a: list[float] = []

    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/cus_A/":
            received = time.monotonic()
            conn.sock.settimeout(5)  # sendall's timeout covers the whole 32 MiB, not each piece of it
            conn.send(conn.head(200, length=len(body)))
            conn.send(memoryview(body)[:-1])  # no copy of the 32 MiB
            conn.sleep(max(0.0, received + RACE_TIMEOUT - RACE_LEAD - time.monotonic()))
            conn.send(body[-1:])  # the last byte just before A's deadline
            conn.served_a = True
        elif request.path == "/customers/cus_B/":
            if getattr(conn, "served_a", False):
                b_on_a.append(time.monotonic())
                conn.sleep(RACE_TIMEOUT / 2)  # a normal answer, well inside B's own deadline
                conn.respond(200, B)
            else:
                conn.respond(200, B, close=True)
        else:
            conn.respond(404, {"detail": "Not found."})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=RACE_TIMEOUT, max_retries=0, max_response_bytes=64 << 20)
    victims: list[BaseException] = []
    rounds: list[str] = []

    def fetch_b(hook: PiriodHook) -> bool:
        try:
            hook.get_customer("cus_B")
        except PiriodError as exc:
            if "deadline" not in str(exc):
                victims.append(exc)
            return False
        return True

    budget_end = time.monotonic() + RACE_BUDGET
    while len(rounds) < RACE_ROUNDS and time.monotonic() < budget_end and not victims:
        hook = PiriodHook()
        stop.clear()
        outcome: dict[str, object] = {}
        round_started = time.monotonic()

        def run_a(hook=hook, outcome=outcome):
            try:
                outcome["A"] = hook.get_customer("cus_A").id
            except BaseException as exc:
                outcome["A"] = exc
            stop.set()

        def run_b(hook=hook, started=round_started):
            if stop.wait(max(0.0, started + RACE_TIMEOUT - RACE_HOT - time.monotonic())):
                return
            end = time.monotonic() + 2 * RACE_TIMEOUT
            while not stop.is_set() and time.monotonic() < end:
                if not fetch_b(hook):
                    return
                stop.wait(RACE_PAUSE)
            fetch_b(hook)  # one more request after A finished: it may land on A's connection

        threads = [threading.Thread(target=run_a, daemon=True)]
        threads += [threading.Thread(target=run_b, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        stop.set()
        rounds.append(repr(outcome.get("A"))[:100])
    assert not victims, (
        f"a healthy request of another thread failed with a non-deadline error in round {len(rounds)} "
        f"(A's outcome per round: {rounds}; B requests that reused A's connection: {len(b_on_a)}): {victims[0]!r}"
    )


# ----------------------------------------------------------------------------- decoding a big body


def test_a_big_json_body_does_not_block_the_event_loop(hostile_server, monkeypatch):
    """4 MiB (a quarter of the default cap) of ``1e-400`` literals, which take seconds of CPU to decode, and a
    decoder made to take 3 s more wherever it runs (how long the real decode takes depends on the machine): the
    async hook decodes off the event loop, so the triggerer's loop never stalls for a third of that."""
    from airflow_provider_piriod import jsoncodec

    body = _decimal_bomb(4 << 20)
    server = hostile_server(lambda conn, request: conn.respond(200, body))
    connect(monkeypatch, server, timeout=STALL, max_retries=0)
    decode = jsoncodec.loads

    def slow_decode(data, *args, **kwargs):
        time.sleep(DECODE_STALL)  # blocks the thread it runs in, as a decode does; on the loop, the loop
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(jsoncodec, "loads", slow_decode)

    async def run():
        stalls = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                stalls.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        async with PiriodAsyncHook() as hook:
            customer = await hook.get_customer_json("cus_A")
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.05)  # let the ticker record the gap
        tick.cancel()
        return max(stalls, default=0), elapsed, customer["id"]

    stall, elapsed, got = bounded(lambda: asyncio.run(run()), 2 * STALL).ok()
    assert got == "cus_A"
    assert elapsed >= DECODE_STALL, "precondition: the decoder ran"
    assert stall < DECODE_STALL / 3, f"the event loop was blocked for {stall:.2f} s (the call took {elapsed:.2f} s)"


def test_a_body_over_the_size_cap_is_refused_before_any_decode_and_never_retried(hostile_server, monkeypatch):
    """Decoding is CPU work that the deadline cannot interrupt; what bounds it is ``max_response_bytes``. 2 MiB of
    ``1e-400`` literals (seconds of CPU for the codec) against a 1 MiB cap: refused by its declared length before
    a byte is decoded, as a deterministic refusal, so it is not retried either (one request with max_retries=3)."""
    body = _decimal_bomb(2 << 20)
    server = hostile_server(lambda conn, request: conn.respond(200, body))
    connect(monkeypatch, server, timeout=30, max_retries=3, max_response_bytes=1 << 20)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 20).raised(PiriodError)
    assert "max_response_bytes" in str(error)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("tail", "requests"),
    [
        (b", NaN]}", 1),  # a JSON text the codec refuses at its very end (NaN is not JSON): not retried ...
        (b"]} junk", 4),  # ... or not JSON at all (a truncated or mangled body): a PiriodDecodeError, retried
    ],
    ids=["refused-json", "not-json"],
)
def test_decoding_work_is_bounded_by_the_size_cap_and_the_retries(hostile_server, monkeypatch, tail, requests):
    """The known limit, stated: a decode that has begun runs to its end, past the attempt's deadline if it must
    (CPU work, not a wait the deadline can cut). What bounds it is ``max_response_bytes`` per attempt and the
    retries: a body the codec refuses is a deterministic refusal, never retried; a body that is not JSON is
    retried (``PiriodDecodeError`` is transient) at most ``max_retries`` times. 512 KiB of ``1e-400``
    literals (the codec's slow path) under a 1 MiB cap, ``max_retries=3``, and what ends the body decides;
    the number of requests says how many decodes ran, whatever the machine's speed."""
    body = _decimal_bomb(512 << 10)[:-2] + tail
    server = hostile_server(lambda conn, request: conn.respond(200, body))
    connect(monkeypatch, server, timeout=STALL, max_retries=3, max_response_bytes=1 << 20)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 2 * STALL).raised(PiriodError)
    assert isinstance(error, PiriodDecodeError) is (requests > 1), f"{error!r:.300}"
    assert len(server.requests) == requests, f"{len(server.requests)} requests for {error!r:.300}"


# ----------------------------------------------------------------------------- load: 429s and many ids


@pytest.mark.parametrize("value", ["0", "-1", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_of_zero_or_in_the_past_is_not_a_hot_loop(hostile_server, monkeypatch, value):
    """429s are waited out until ``rate_limit_wait`` (2 s here, 600 s by default) passes; a ``Retry-After`` that
    leaves nothing to wait (0, negative, NaN, a date in the past) never drops the wait below a tenth of the
    backoff, so it sends at most 10 times the requests sent with no header at all (default backoff), instead
    of hammering the server."""
    monkeypatch.setattr(PiriodHook, "retry_base_delay", 0.5)
    monkeypatch.setattr(PiriodHook, "retry_max_delay", 30.0)
    with_header = hostile_server(lambda conn, request: conn.respond(429, {"detail": "slow"}, [("Retry-After", value)]))
    without = hostile_server(lambda conn, request: conn.respond(429, {"detail": "slow"}))
    connect(monkeypatch, without, timeout=1, max_retries=2, rate_limit_wait=2)
    bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)
    connect(monkeypatch, with_header, timeout=1, max_retries=2, rate_limit_wait=2)
    bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)
    baseline, hot = len(without.requests), len(with_header.requests)
    assert hot <= 10 * max(baseline, 1), (
        f"in 2 s of rate_limit_wait: {hot} requests with Retry-After: {value!r} vs {baseline} with backoff "
        f"(default rate_limit_wait is 600 s: ~{hot * 300} requests)"
    )


def test_get_objects_stops_in_flight_requests_at_the_first_failure(hostile_server, monkeypatch):
    """cus_0 answers 401 after 0.05 s; the 7 other ids in flight get 429 (``Retry-After: 0.2``) forever. The
    first failure stops the requests waiting to retry and surfaces at once, not when they give up after
    ``rate_limit_wait`` (30 s here, 600 s by default): within a third of it, however loaded the machine."""
    failed_at: list[float] = []

    def handle(conn: Conn, request: Request) -> None:
        if request.path == "/customers/cus_0/":
            conn.sleep(0.05)
            failed_at.append(time.monotonic())
            conn.respond(401, {"detail": "Invalid token."})
        else:
            conn.respond(429, {"detail": "slow"}, [("Retry-After", "0.2")])

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=0, rate_limit_wait=STALL)
    ids = [f"cus_{i}" for i in range(8)]
    outcome = bounded(lambda: PiriodHook().get_customers(ids, max_workers=8), STALL + 10)
    outcome.raised(PiriodError)
    after = sum(1 for r in server.requests if failed_at and r.received_at > failed_at[0])
    assert outcome.elapsed < WITHIN_STALL, (
        f"the 401 of cus_0 (after 0.05 s) surfaced after {outcome.elapsed:.2f} s as {type(outcome.error).__name__}; "
        f"{after} requests were sent after it"
    )
