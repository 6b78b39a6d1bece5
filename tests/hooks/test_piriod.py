"""PiriodHook against the emulator over real HTTP: headers, errors, retries, pagination, safety."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from urllib.parse import quote

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAuthError,
    PiriodError,
    PiriodInputError,
    PiriodNetworkError,
    PiriodNotFoundError,
    PiriodRateLimitError,
    PiriodResponseError,
    PiriodServerError,
    PiriodValidationError,
)
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.models import Customer
from tests import hostile
from tests.hostile import HostileServers, InFlight, bounded, connect, connect_to_a_closed_port


@pytest.fixture
def logs(caplog, capfd):
    """Everything logged so far: stdlib records and what Airflow's structlog printed."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        out, err = capfd.readouterr()
        captured.append(out + err)
        return caplog.text + "".join(captured)

    captured: list[str] = []
    return text


def use_connection(monkeypatch, emulator, **changes):
    """Point piriod_default at the emulator with some fields changed (``extra=`` for extras)."""
    conn = dict(emulator.connection, **changes)
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(conn))


# ---------------------------------------------------------------------- requests as sent


def test_headers_arrive_at_the_server(hook, piriod_emulator):
    hook.count_customers()
    entry = piriod_emulator.requests()[-1]
    assert entry["token_valid"] is True
    assert entry["headers"]["authorization"] == "Token ***"
    assert entry["headers"]["x-simple-workspace"] == piriod_emulator.workspace
    assert entry["headers"]["x-piriod-test-mode"] == "false"
    assert entry["headers"]["accept"] == "application/json"
    assert entry["headers"]["user-agent"].startswith("airflow-provider-piriod/")


def test_test_mode_from_extra_and_from_the_hook_argument(monkeypatch, piriod_emulator):
    test_ids = {c["id"] for c in piriod_emulator.customers(test_mode=True)}
    use_connection(monkeypatch, piriod_emulator, extra={"test_mode": "true"})
    assert {c.id for c in PiriodHook().list_customers()} == test_ids
    assert piriod_emulator.requests()[-1]["headers"]["x-piriod-test-mode"] == "true"
    assert {c.id for c in PiriodHook(test_mode=False).list_customers()} == {
        c["id"] for c in piriod_emulator.customers()
    }


def test_the_session_is_built_once_and_pooled(hook):
    assert hook.get_conn() is hook.get_conn()
    adapter = hook.get_conn().get_adapter("http://127.0.0.1")
    assert adapter._pool_maxsize >= 32


# ---------------------------------------------------------------------- reading customers


def test_get_customer_returns_the_json_piriod_sent(hook, piriod_emulator):
    record = piriod_emulator.customers()[5]
    customer = hook.get_customer(record["id"])
    assert isinstance(customer, Customer)
    assert customer.to_json() == record
    assert customer.country.id == record["country"]["id"]


def test_get_customers_keeps_input_order_and_repeats(hook, piriod_emulator):
    ids = [c["id"] for c in piriod_emulator.customers()][:40]
    wanted = list(reversed(ids)) + ids[:2]
    got = hook.get_customers(wanted, max_workers=8)
    assert [c.id for c in got] == wanted
    requested = [e["path"] for e in piriod_emulator.requests()]
    assert len(requested) == 40  # repeats fetched once


def test_get_customers_really_runs_concurrently(monkeypatch, fast_retries):
    """The server holds every answer until 4 requests (the throttle's starting window) are in flight at once:
    a hook that sent them one at a time would leave its first request held for the whole 30 s stall. The
    server counts, no stopwatch: a loaded machine cannot change the verdict."""
    gate = InFlight(until=4, stall=30)
    with HostileServers() as make:
        server = make(gate.wrap(lambda conn, request: conn.respond(200, {"id": request.path.split("/")[2]})))
        connect(monkeypatch, server, timeout=60, max_retries=0)
        ids = [f"cus_{i}" for i in range(16)]
        got = bounded(lambda: PiriodHook().get_customers(ids, max_workers=16), 90).ok()
    assert [c.id for c in got] == ids
    assert not gate.stalled.is_set(), f"never 4 requests in flight at once (at most {gate.peak})"
    assert 4 <= gate.peak <= 16


def test_get_customers_ignore_missing_skips_unknown_ids(hook, piriod_emulator):
    ids = [c["id"] for c in piriod_emulator.customers()][:3]
    got = hook.get_customers([ids[0], "cus_missing", ids[1], ids[2]], ignore_missing=True)
    assert [c.id for c in got] == ids


def test_get_customers_fails_on_a_missing_id_and_stops_the_rest(hook, piriod_emulator):
    ids = [c["id"] for c in piriod_emulator.customers()][:30]
    piriod_emulator.set_latency(20)
    with pytest.raises(PiriodNotFoundError, match="cus_missing"):
        hook.get_customers(["cus_missing", *ids], max_workers=2)
    assert len(piriod_emulator.requests()) < 31


def test_get_customers_fails_on_an_object_its_model_refuses_and_stops_the_rest(hook, piriod_emulator):
    ids = [c["id"] for c in piriod_emulator.customers()][:40]
    piriod_emulator.update_customer(ids[0], created="the day before yesterday")
    piriod_emulator.add_fault("status", status=503, path=f"/customers/{ids[1]}/", times=1000)  # retried meanwhile
    piriod_emulator.set_latency(100)
    with pytest.raises(PiriodResponseError, match="does not have the documented shape") as failure:
        hook.get_customers(ids, max_workers=4)
    # `failure` still holds the error (as a task runner holds it to log it): the pull must be over all the same
    sent = len(piriod_emulator.requests())
    assert sent <= 1 + 2 * 4  # the window
    assert not [t.name for t in threading.enumerate() if t.name.startswith("piriod_")]
    time.sleep(0.5)
    assert len(piriod_emulator.requests()) == sent, "retries went on after the call had failed"
    assert "created" in str(failure.value)  # the field the model refused


def test_get_customers_checks_every_id_before_any_request(hook, piriod_emulator):
    with pytest.raises(PiriodInputError, match=r"customer_ids\[2\] is empty or blank"):
        hook.get_customers(["cus_a", "cus_b", "  "])
    with pytest.raises(PiriodInputError, match="customer_ids must be a list"):
        hook.get_customers("cus_a")
    with pytest.raises(PiriodInputError, match="max_workers"):
        hook.get_customers(["cus_a"], max_workers=0)
    assert piriod_emulator.requests() == []


@pytest.mark.piriod_emulator(customers=1250, seed=5)
def test_iter_customers_follows_next_across_many_pages(hook, piriod_emulator):
    expected = [c["id"] for c in sorted(piriod_emulator.customers(), key=lambda c: c["created"], reverse=True)]
    got = [c.id for c in hook.iter_customers(page_size=50)]
    assert got == expected
    pages = piriod_emulator.requests()
    assert len(pages) == -(-len(expected) // 50)
    assert [dict(e["params"]).get("page", "1") for e in pages] == [str(n) for n in range(1, len(pages) + 1)]


def test_iter_customers_reads_one_page_at_a_time(hook, piriod_emulator):
    customers = hook.iter_customers(page_size=10)
    first_ten = [next(customers) for _ in range(10)]
    assert len(first_ten) == 10 and len(piriod_emulator.requests()) == 1
    next(customers)
    assert len(piriod_emulator.requests()) == 2


def test_filters_are_sent_as_piriod_reads_them(hook, piriod_emulator):
    everyone = piriod_emulator.customers()
    wanted = {c["id"] for c in everyone if c["status"] in ("pending", "archived") and c["country"]["id"] == "CL"}
    got = hook.list_customers({"status__in": ["pending", "archived"], "country": "CL"}, page_size=100)
    assert {c.id for c in got} == wanted
    assert dict(piriod_emulator.requests()[0]["params"]) == {
        "status__in": "pending,archived",
        "country": "CL",
        "page_size": "100",
    }


def test_count_customers_makes_one_small_request(hook, piriod_emulator):
    assert hook.count_customers({"country": "MX"}) == sum(
        c["country"]["id"] == "MX" for c in piriod_emulator.customers()
    )
    assert len(piriod_emulator.requests()) == 1
    assert dict(piriod_emulator.requests()[0]["params"])["page_size"] == "1"


def test_bad_page_size_and_filters_are_refused_before_any_request(hook, piriod_emulator):
    for bad in (0, 101, "10", True):
        with pytest.raises(PiriodInputError, match="page_size"):
            hook.list_customers(page_size=bad)
    with pytest.raises(PiriodInputError, match=r"filters\['email'\] is None"):
        hook.list_customers({"email": None})
    with pytest.raises(PiriodInputError, match="set by the hook"):
        hook.list_customers({"page": 2})
    with pytest.raises(PiriodInputError, match="must be a string, number"):
        hook.count_customers({"metadata": {"a": 1}})
    assert piriod_emulator.requests() == []


# ---------------------------------------------------------------------- status codes to typed errors


@pytest.mark.parametrize(
    ("changes", "error", "status", "text"),
    [
        ({"password": "wrong-token"}, PiriodAuthError, 401, "Invalid token"),
        ({"login": "acc_not_mine"}, PiriodAuthError, 403, "permission"),
    ],
)
def test_auth_failures(monkeypatch, piriod_emulator, fast_retries, changes, error, status, text):
    use_connection(monkeypatch, piriod_emulator, **changes)
    with pytest.raises(error, match=text) as excinfo:
        PiriodHook().count_customers()
    assert excinfo.value.status_code == status
    assert len(piriod_emulator.requests()) == 1  # never retried


def test_missing_workspace_header_is_an_auth_error(hook, piriod_emulator):
    hook.get_conn().headers["x-simple-workspace"] = ""  # what a proxy stripping the header would cause
    with pytest.raises(PiriodAuthError, match="x-simple-workspace header is required") as excinfo:
        hook.count_customers()
    assert excinfo.value.status_code == 400


def test_404_is_not_found_with_piriods_detail(hook, piriod_emulator):
    with pytest.raises(PiriodNotFoundError) as excinfo:
        hook.get_customer("cus_doesnotexist")
    assert excinfo.value.status_code == 404 and excinfo.value.detail == "Not found."
    assert str(excinfo.value) == "Piriod GET /customers/cus_doesnotexist/ returned 404 Not Found: Not found."


def test_400_is_a_validation_error_with_field_errors(hook, piriod_emulator):
    with pytest.raises(PiriodValidationError) as excinfo:
        hook.count_customers({"created__gte": "yesterday"})
    assert excinfo.value.errors == {"created__gte": ["Enter a valid date/time."]}
    assert "created__gte: Enter a valid date/time." in str(excinfo.value)
    assert len(piriod_emulator.requests()) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, PiriodRateLimitError),
        (500, PiriodServerError),
        (502, PiriodServerError),
        (503, PiriodServerError),
        (405, PiriodError),
    ],
)
def test_status_codes_map_to_typed_errors(monkeypatch, piriod_emulator, fast_retries, status, error):
    use_connection(monkeypatch, piriod_emulator, extra={"max_retries": 0, "rate_limit_wait": 0})
    piriod_emulator.add_fault("status", status=status, retry_after="0")
    with pytest.raises(error) as excinfo:
        PiriodHook().count_customers()
    assert type(excinfo.value) is error and excinfo.value.status_code == status


def test_redirects_are_not_followed(hook, piriod_emulator):
    piriod_emulator.add_fault("redirect")
    with pytest.raises(PiriodResponseError, match=r"redirects are not followed.*elsewhere\.invalid"):
        hook.count_customers()
    assert len(piriod_emulator.requests()) == 1


# ---------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("status", {"status": 429, "retry_after": "0"}),
        ("status", {"status": 503}),
        ("status", {"status": 502}),
        ("drop", {}),
        ("truncated_json", {}),
        ("invalid_json", {}),
    ],
)
def test_transient_failures_are_retried_then_succeed(hook, piriod_emulator, logs, kind, spec):
    piriod_emulator.add_fault(kind, times=2, **spec)
    assert hook.count_customers() == len(piriod_emulator.customers())
    assert [e["fault"] for e in piriod_emulator.requests()] == [kind, kind, None]
    text = logs()
    retried = set(re.findall(r"attempt (\d) of 6 failed \(.+?\); retrying in", text))
    if spec.get("status") == 429:  # a 429 is "wait", not a failure: one line saying so, no retry spent
        # once in the log (Airflow 2.11 may capture that one line both as a record and as printed text)
        assert retried == set() and 1 <= text.count("Piriod is rate-limiting customers (429)") <= 2
    else:  # the first retry says which attempt and why; the rest are at DEBUG
        assert retried == {"1"} and "further retries of this call are logged at DEBUG" in text


def test_gives_up_after_max_retries_with_the_last_error(monkeypatch, piriod_emulator, fast_retries):
    use_connection(monkeypatch, piriod_emulator, extra={"max_retries": 2})
    piriod_emulator.add_fault("status", status=500, nth=1)
    piriod_emulator.add_fault("status", status=502, nth=2)
    piriod_emulator.add_fault("status", status=503, nth=3)
    with pytest.raises(PiriodServerError, match="503") as excinfo:
        PiriodHook().count_customers()
    assert excinfo.value.status_code == 503
    assert len(piriod_emulator.requests()) == 3


def test_connection_refused_is_a_network_error_after_retries(monkeypatch, fast_retries):
    connect_to_a_closed_port(monkeypatch, max_retries=1)
    with pytest.raises(PiriodNetworkError, match="failed before a complete answer arrived"):
        PiriodHook().count_customers()


def test_retry_after_is_honoured(hook, piriod_emulator):
    piriod_emulator.add_fault("status", status=429, retry_after="0.4")
    hook.count_customers()
    first, second = piriod_emulator.requests()
    assert second["time"] - first["time"] >= 0.4


def test_retry_after_on_a_503_is_honoured(hook, piriod_emulator):
    piriod_emulator.add_fault("status", status=503, retry_after="0.4")
    hook.count_customers()
    first, second = piriod_emulator.requests()
    assert second["time"] - first["time"] >= 0.4


def test_retry_after_http_date_is_honoured(hook, piriod_emulator):
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
    piriod_emulator.add_fault("status", status=429, retry_after=when)
    hook.count_customers()
    first, second = piriod_emulator.requests()
    assert second["time"] - first["time"] >= 0.9  # HTTP dates have one-second resolution


def test_retry_after_is_capped(hook, piriod_emulator, monkeypatch):
    monkeypatch.setattr(PiriodHook, "retry_after_max", 0.2)
    piriod_emulator.add_fault("status", status=429, retry_after="3600")
    started = time.monotonic()
    hook.count_customers()
    # an hour was asked for and the default cap is 60 s: ending within a third of that default shows the
    # 0.2 s cap was applied, with room for any scheduling delay
    assert time.monotonic() - started < 20


def test_one_429_pauses_every_worker_of_the_hook(monkeypatch, fast_retries):
    """The first request gets a 429 with ``Retry-After: 4``, once another worker's request has arrived (so some
    are in flight however slow the machine); the answers to the requests other workers had in flight meanwhile
    are held until 1 s after the 429 left the server. Those workers are then free, yet none may
    send anything before the 4 s pause is over: no request arrives between 1 s and 4 s after the 429 (without
    the shared pause they would come at once). A worker cannot send again before it has its answer, so no
    scheduling delay can make a request arrive early; a delay can only make it later."""
    pause, hold = 4.0, 1.0
    lock, told, another = threading.Lock(), threading.Event(), threading.Event()
    told_at: list[float] = []
    arrived: list[object] = []

    def handle(conn, request):
        with lock:
            arrived.append(request)
            first = len(arrived) == 1
        if not first:
            another.set()
        else:
            another.wait(30)  # another worker's request is in flight, whatever the machine's speed
            told_at.append(time.monotonic())  # before it is sent: the client cannot read it any earlier
            conn.respond(429, {"detail": "Request was throttled."}, [("Retry-After", f"{pause:g}")])
            told.set()
            return
        if told.wait(30):
            conn.sleep(max(0.0, told_at[0] + hold - time.monotonic()))
        conn.respond(200, {"id": request.path.split("/")[2]})

    ids = [f"cus_{i}" for i in range(24)]
    with HostileServers() as make:
        server = make(handle)
        connect(monkeypatch, server, timeout=60, max_retries=0)
        got = bounded(lambda: PiriodHook().get_customers(ids, max_workers=8), 60).ok()
    assert [c.id for c in got] == ids
    assert len(server.requests) == 25  # the throttled request once more
    told_at_ = told_at[0]
    held = [r for r in server.requests[1:] if r.received_at <= told_at_ + hold]
    assert held, "precondition: other workers had requests in flight when the 429 was sent"
    early = [r.received_at - told_at_ for r in server.requests if told_at_ + hold < r.received_at < told_at_ + pause]
    assert early == [], f"requests sent during the {pause:g} s pause, this long after the 429: {early}"


def test_a_body_that_never_finishes_hits_the_total_deadline(monkeypatch, piriod_emulator, fast_retries):
    use_connection(monkeypatch, piriod_emulator, extra={"timeout": 0.5, "max_retries": 0})
    piriod_emulator.add_fault("slow_body", chunk_delay=0.05, seconds=30)  # a chunk every 50 ms for 30 s
    started = time.monotonic()
    with pytest.raises(PiriodNetworkError, match=r"not complete within the 0\.5 s deadline"):
        PiriodHook().count_customers()
    # far below the 30 s the body lasts (no per-read timeout ends it), however loaded the machine
    assert time.monotonic() - started < 10


def test_oversized_bodies_are_refused(piriod_emulator, monkeypatch):
    use_connection(monkeypatch, piriod_emulator, extra={"max_response_bytes": 8192})
    with pytest.raises(PiriodResponseError, match="exceeds the 8192-byte limit"):
        PiriodHook().list_customers(page_size=100)
    assert len(PiriodHook().list_customers(page_size=1)) == len(piriod_emulator.customers())  # small pages fit


# ---------------------------------------------------------------------- answers that break the contract


def test_non_object_answer_is_a_response_error(hook, piriod_emulator):
    piriod_emulator.add_fault("non_object")
    with pytest.raises(PiriodResponseError, match="expected an object"):
        hook.get_customer(piriod_emulator.customers()[0]["id"])


def test_page_without_results_is_a_response_error(hook, piriod_emulator):
    piriod_emulator.add_fault("missing_results")
    with pytest.raises(PiriodResponseError, match="without a 'results' list"):
        hook.list_customers()


@pytest.mark.parametrize("kind", ["next_host", "next_scheme"])
def test_next_links_off_the_configured_origin_are_refused(hook, piriod_emulator, kind):
    piriod_emulator.add_fault(kind)
    with pytest.raises(PiriodResponseError, match="refusing to follow 'next'"):
        hook.list_customers(page_size=10)
    assert len(piriod_emulator.requests()) == 1  # nothing sent elsewhere, nothing more sent here


def test_a_next_link_looping_back_is_refused(hook, piriod_emulator):
    piriod_emulator.add_fault("next_loop", nth=2)
    with pytest.raises(PiriodResponseError, match="already read"):
        hook.list_customers(page_size=10)


# ---------------------------------------------------------------------- hostile ids


@pytest.mark.parametrize(
    "customer_id",
    ["../admin", "a/b", "x?page=2", "x#frag", "100%", "with space", "ñandú-ü", "a\x01b", "%2e%2e", "..%2F", "/"],
)
def test_hostile_ids_stay_one_path_segment(hook, piriod_emulator, customer_id):
    with pytest.raises(PiriodNotFoundError):
        hook.get_customer(customer_id)
    entry = piriod_emulator.requests()[-1]
    assert entry["path"] == f"/customers/{quote(customer_id, safe='')}/"
    assert entry["query"] == ""


@pytest.mark.parametrize("customer_id", ["", "   ", "\n", ".", "..", None, 42, "x" * 1025])
def test_unusable_ids_are_refused_before_any_request(hook, piriod_emulator, customer_id):
    with pytest.raises(PiriodInputError, match="customer_id"):
        hook.get_customer(customer_id)
    assert piriod_emulator.requests() == []


# ---------------------------------------------------------------------- secrets


def test_token_is_absent_from_logs_errors_and_reprs(monkeypatch, piriod_emulator, fast_retries, logs):
    use_connection(monkeypatch, piriod_emulator, extra={"max_retries": 1})
    hook = PiriodHook()
    piriod_emulator.add_fault(
        "status", status=503, times=None, body=f"echo Authorization: Token {piriod_emulator.token}"
    )
    with pytest.raises(PiriodServerError) as excinfo:
        hook.count_customers()
    ok, message = hook.test_connection()
    token = piriod_emulator.token
    assert not ok
    texts = [
        str(excinfo.value),
        repr(excinfo.value),
        excinfo.value.detail or "",
        message,
        repr(hook),
        repr(hook.settings),
        str(hook.settings),
        repr(hook.get_conn()),
        repr(hook.get_conn().auth),
        logs(),
    ]
    assert "retrying in" in texts[-1]  # the log capture did see the retries
    assert all(token not in text for text in texts)
    assert "***" in str(excinfo.value)


def test_token_with_a_line_break_is_refused(monkeypatch, piriod_emulator):
    use_connection(monkeypatch, piriod_emulator, password="tok\r\nX-Injected: 1")
    with pytest.raises(PiriodError, match=r"password \(API token\) contains a line break"):
        PiriodHook().count_customers()
    assert piriod_emulator.requests() == []


def test_netrc_cannot_replace_the_token(hook, piriod_emulator, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login intruder password hijack\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    hook.count_customers()
    assert piriod_emulator.requests()[-1]["token_valid"] is True


# ---------------------------------------------------------------------- test_connection


def test_test_connection_succeeds_and_is_read_only(hook, piriod_emulator):
    ok, message = hook.test_connection()
    assert ok, message
    assert piriod_emulator.workspace in message and "customers visible" in message
    assert [e["method"] for e in piriod_emulator.requests()] == ["GET"]


def test_test_connection_reports_failures_instead_of_raising(monkeypatch, piriod_emulator):
    use_connection(monkeypatch, piriod_emulator, password="wrong")
    ok, message = PiriodHook().test_connection()
    assert not ok and "401" in message and "API token" in message
    monkeypatch.delenv("AIRFLOW_CONN_PIRIOD_DEFAULT")
    ok, message = PiriodHook().test_connection()
    assert not ok and "piriod_default" in message


def test_nothing_happens_in_init(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_PIRIOD_DEFAULT", raising=False)
    hook = PiriodHook("no_such_connection", test_mode=True, timeout=5, max_retries=1)  # no lookup, no error
    assert hook.piriod_conn_id == "no_such_connection"


def test_hook_is_usable_from_many_threads(hook, piriod_emulator):
    ids = [c["id"] for c in piriod_emulator.customers()][:20]
    errors = []

    def worker():
        try:
            assert [c.id for c in hook.get_customers(ids, max_workers=4)] == ids
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------------- bulk: parallel pages, throttle


@pytest.mark.piriod_emulator(customers=1234, seed=8)
@pytest.mark.parametrize(("page_size", "workers"), [(100, 2), (37, 8), (10, 32), (100, 64)])
def test_parallel_pages_give_the_same_customers_in_the_same_order(hook, piriod_emulator, page_size, workers):
    sequential = [c.id for c in hook.iter_customers({"country": "CL"}, page_size=page_size)]
    parallel = [c.id for c in hook.iter_customers({"country": "CL"}, page_size=page_size, max_workers=workers)]
    assert parallel == sequential
    assert len(parallel) == len(set(parallel))
    assert set(parallel) == {c["id"] for c in piriod_emulator.customers() if c["country"]["id"] == "CL"}


def test_parallel_pages_are_fetched_concurrently_with_a_bounded_window(monkeypatch, fast_retries):
    """1,100 customers in 11 pages of 100, ``max_workers=4``: page 1 alone, then the other pages 4 at a time. The
    server holds the answers to pages 2.. until 4 of them are in flight at once (a sequential walk would leave
    page 2 held for the whole 30 s stall) and counts the most ever in flight: never more than the 4 workers."""
    total, size = 1100, 100
    pages = -(-total // size)
    gate = InFlight(until=4, stall=30)

    def answer(conn, request):
        n = int(request.param("page") or 1)
        results = [{"id": f"cus_{i:05d}"} for i in range((n - 1) * size, min(n * size, total))]
        following = f"{conn.server.url}/customers/?page={n + 1}&page_size={size}" if n < pages else None
        conn.respond(200, hostile.page(results, following, count=total))

    held = gate.wrap(answer)

    def handle(conn, request):
        return (answer if int(request.param("page") or 1) == 1 else held)(conn, request)

    with HostileServers() as make:
        server = make(handle)
        connect(monkeypatch, server, timeout=60, max_retries=0)
        hook = PiriodHook()
        customers = hook.iter_customers(page_size=size, max_workers=4)
        first = bounded(lambda: next(customers), 60).ok()  # page 1 only
        assert len(server.requests) == 1
        rest = bounded(lambda: list(customers), 90).ok()
        requested = sorted(int(r.param("page") or 1) for r in server.requests)
    assert [c.id for c in [first, *rest]] == [f"cus_{i:05d}" for i in range(total)]
    assert requested == list(range(1, pages + 1))  # each page once
    assert not gate.stalled.is_set(), f"never 4 pages in flight at once (at most {gate.peak})"
    assert gate.peak == 4  # concurrent, and bounded by max_workers


@pytest.mark.piriod_emulator(customers=500)
def test_a_customer_created_during_a_parallel_scan_is_not_duplicated(hook, piriod_emulator):
    originals = {c["id"] for c in piriod_emulator.customers()}
    piriod_emulator.create_customer(after_requests=2)
    got = [c.id for c in hook.iter_customers(page_size=50, max_workers=8)]
    assert len(got) == len(set(got))
    assert originals <= set(got)


@pytest.mark.piriod_emulator(customers=500)
def test_a_page_that_answers_404_while_the_count_says_otherwise_is_an_error(hook, piriod_emulator):
    piriod_emulator.add_fault("status", status=404, query="page=4", times=None)
    with pytest.raises(PiriodResponseError, match=r"page 4 answered 404 although .* refusing to return a partial list"):
        list(hook.iter_customers(page_size=50, max_workers=8))


@pytest.mark.piriod_emulator(customers=2000, latency_ms=10)
def test_a_rate_limited_piriod_sees_the_hook_slow_down(piriod_emulator):
    piriod_emulator.set_rate_limit(100, burst=10)
    ids = [c["id"] for c in piriod_emulator.customers()][:300]
    hook = PiriodHook()
    got = hook.get_customers(ids, max_workers=32)
    assert [c.id for c in got] == ids
    statuses = [e["status"] for e in piriod_emulator.requests()]
    assert statuses.count(429) / len(statuses) < 0.15  # without the throttle, most of 32 workers' requests bounce
    assert hook._throttle.limit < 32
    # how close to the allowed rate the hook gets (wall time against N/R) is a speed figure, not a unit test's
    # verdict: `make bench` measures it (benchmarks/run.py, section E)
