"""Round 5 of adversarial tests of the exactly-once writes (see test_writes_adversary.py for the harness).

Money-moving failures: a lost subscription cancel, mixed ambiguous and refused actions, retried tasks, the
100-per-page boundary, read_only and dry_run, and sixteen workers against a server answering out of order.
"""

from __future__ import annotations

import json
import random
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_piriod import compat
from airflow_provider_piriod.exceptions import PiriodAmbiguousWriteError, PiriodError, PiriodInputError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.operators.piriod import PiriodActionOperator, PiriodUpsertOperator
from airflow_provider_piriod.operators.writes import PiriodCreateOperator
from tests.hooks.test_writes_adversary import FakePiriod, is_key_lookup, key_of, no_leak, posts, serve
from tests.hostile import TOKEN, Conn, Request, bounded, connect, leaked

pytestmark = pytest.mark.usefixtures("no_proxies", "fast_retries")


def as_task(monkeypatch: pytest.MonkeyPatch, try_number: int) -> None:
    """Run as try ``try_number`` of task d.t in run r1."""
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r1", map_index=-1, try_number=try_number)
    monkeypatch.setattr(compat, "get_current_context", lambda: {"ti": ti}, raising=False)


def writes(server: Any) -> list[Request]:
    return [r for r in list(server.requests) if r.method != "GET"]


# ----------------------------------------------------------------------------- subscription cancel (DELETE)


def test_a_lost_subscription_cancel_is_not_sent_again_blindly(servers, monkeypatch):
    """Piriod cancels on DELETE, the answer is lost; the cancel is an action and must be resolved by reading the
    status back, not resent (a resent DELETE is refused as already cancelled, failing a cancelled subscription)."""
    state = {"status": "active", "deletes": 0}

    def handle(conn: Conn, request: Request) -> None:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET" and parts == ["subscriptions", "sub_1"]:
            conn.respond(200, {"id": "sub_1", "status": state["status"]})
        elif request.method == "DELETE" and parts == ["subscriptions", "sub_1"]:
            state["deletes"] += 1
            if state["status"] == "cancelled":
                conn.respond(400, {"detail": "Subscription is already cancelled."})
            else:
                state["status"] = "cancelled"
                conn.close()  # done, the answer lost
        else:
            conn.respond(404, {"detail": "Not found."})

    connect(monkeypatch, servers(handle), max_retries=2, timeout=2)
    op = PiriodActionOperator(task_id="c", resource="subscriptions", action="cancel", object_ids=["sub_1"])
    outcome = bounded(lambda: op.execute({}), 20)
    assert state["deletes"] == 1, f"a lost cancel was sent {state['deletes']} times without a status read"
    assert outcome.ok()["updated"] == 1


# ----------------------------------------------------------------------------- actions: ambiguous and refused


def test_a_finalize_batch_with_ambiguous_and_refused_invoices_fails_as_ambiguous_sending_nothing_twice(
    servers, monkeypatch
):
    statuses = {f"inv_{n}": "draft" for n in range(24)}
    finalized: dict[str, int] = {}
    lock = threading.Lock()
    rng = random.Random(5)
    lost = {"inv_5", "inv_13"}

    def handle(conn: Conn, request: Request) -> None:
        parts = [p for p in request.path.split("/") if p]
        with lock:
            delay = rng.random() * 0.05
        conn.sleep(delay)  # answers come back out of order
        if request.method == "GET" and len(parts) == 2:
            if parts[1] in lost and statuses[parts[1]] != "draft":
                conn.respond(503, {"detail": f"down {TOKEN}"})
                return
            conn.respond(200, {"id": parts[1], "status": statuses[parts[1]]})
        elif request.method == "POST" and len(parts) == 3 and parts[2] == "finalize":
            n = int(parts[1].split("_")[1])
            with lock:
                finalized[parts[1]] = finalized.get(parts[1], 0) + 1
            if parts[1] in lost:
                statuses[parts[1]] = "finalized"
                conn.close()
            elif n % 3 == 0:
                conn.respond(400, {"lines": ["An invoice without lines cannot be finalized."]})
            else:
                statuses[parts[1]] = "finalized"
                conn.respond(200, {"id": parts[1], "status": "finalized"})
        else:
            conn.respond(404, {"detail": "Not found."})

    connect(monkeypatch, servers(handle), max_retries=1, timeout=2)
    op = PiriodActionOperator(
        task_id="f", resource="invoices", action="finalize", object_ids=list(statuses), max_workers=16
    )
    error = bounded(lambda: op.execute({}), 30).raised(PiriodError)
    assert all(n == 1 for n in finalized.values()), f"finalized more than once: {finalized}"
    assert isinstance(error, PiriodAmbiguousWriteError), f"{type(error).__name__}: {str(error)[:300]}"
    assert any(invoice + "/" in str(error) for invoice in lost), str(error)[:300]
    no_leak(error)


# ----------------------------------------------------------------------------- refusals beyond the named ones


def test_every_refused_record_is_in_the_output_file_when_more_than_the_error_names(servers, monkeypatch, tmp_path):
    """The task error names 20 refused records, 'all are in the output file' (NAMED_FAILURES): the file must be
    written even though the task fails, or records 21+ are named nowhere."""
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(400, {"email": ["Enter a valid email address."]}) or True
    serve(servers, monkeypatch, fake)
    records = [{"name": "x", "tax_id": f"T{n}", "email": "bad"} for n in range(25)]
    out = tmp_path / "report.ndjson"
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=records, match_on="tax_id", output_path=str(out)
    )
    error = bounded(lambda: op.execute({}), 30).raised(PiriodInputError)
    assert "and 5 more" in str(error)
    assert out.exists(), "the refused records past the 20 named are written nowhere"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["index"] for line in lines if line["action"] == "failed") == list(range(25))


# ----------------------------------------------------------------------------- retried tasks


def test_a_retried_upsert_after_a_mid_batch_crash_creates_each_record_once(servers, monkeypatch):
    """Try 1: T3's create is stored but its answer lost and the key lookup is down: the task fails. Try 2
    (try_number 2): the listing does not show T3 yet (index lag); the look-first by write key must find it."""
    fake = FakePiriod()
    hidden: set[str] = set()
    phase = {"try": 1}

    def post(conn: Conn, request: Request, data: Any) -> bool:
        if phase["try"] == 1 and data["tax_id"] == "T3":
            obj = fake.store(data)
            hidden.add(obj["id"])
            conn.close()
            return True
        return False

    def get(conn: Conn, request: Request) -> bool:
        if is_key_lookup(request):
            if phase["try"] == 1:
                conn.respond(503, {"detail": "down"})
                return True
            return False
        page_ = fake.list_page(request)
        page_["results"] = [o for o in page_["results"] if o["id"] not in hidden]
        page_["count"] = max(0, page_["count"] - len(hidden))
        conn.respond(200, page_)
        return True

    fake.post, fake.get = post, get
    server = serve(servers, monkeypatch, fake, max_retries=1)
    records = [{"name": f"P{n}", "tax_id": f"T{n}"} for n in range(8)]
    as_task(monkeypatch, 1)
    op1 = PiriodUpsertOperator(task_id="t", resource="customers", records=records, match_on="tax_id", max_workers=4)
    bounded(lambda: op1.execute({}), 30).raised(PiriodAmbiguousWriteError)
    phase["try"] = 2
    as_task(monkeypatch, 2)
    op2 = PiriodUpsertOperator(task_id="t", resource="customers", records=records, match_on="tax_id", max_workers=4)
    report = bounded(lambda: op2.execute({}), 30).ok()
    per_tax: dict[str, int] = {}
    for obj in fake.objects:
        per_tax[obj["tax_id"]] = per_tax.get(obj["tax_id"], 0) + 1
    assert per_tax == {f"T{n}": 1 for n in range(8)}, per_tax
    by_id = {o["id"]: o for o in fake.objects}
    assert [by_id[i]["tax_id"] for i in report["ids"]] == [r["tax_id"] for r in records]
    assert posts(server) <= 8


def test_a_retried_create_operator_returns_the_first_tries_object_without_posting(servers, monkeypatch):
    fake = FakePiriod()
    phase = {"try": 1}

    def post(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(502, {"detail": f"bad gateway {TOKEN}"})
        return True

    def get(conn: Conn, request: Request) -> bool:
        if is_key_lookup(request) and phase["try"] == 1:
            conn.respond(503, {"detail": f"down {TOKEN}"})
            return True
        return False

    fake.post, fake.get = post, get
    server = serve(servers, monkeypatch, fake, max_retries=1)
    data = {"customer": "cus_9", "lines": [{"amount": "19990.00"}]}
    as_task(monkeypatch, 1)
    op1 = PiriodCreateOperator(task_id="t", resource="invoices", data=data)
    fake.path, fake.prefix = "/invoices/", "inv"
    error = bounded(lambda: op1.execute({}), 20).raised(PiriodAmbiguousWriteError)
    no_leak(error)
    assert posts(server) == 1
    phase["try"] = 2
    as_task(monkeypatch, 2)
    op2 = PiriodCreateOperator(task_id="t", resource="invoices", data=data)
    created = bounded(lambda: op2.execute({}), 20).ok()
    assert posts(server) == 1, "a retried create task posted the invoice again"
    assert len(fake.objects) == 1 and created["id"] == fake.objects[0]["id"]


def test_a_retried_create_whose_first_try_sent_nothing_posts_once_after_looking(servers, monkeypatch):
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake)
    as_task(monkeypatch, 3)
    op = PiriodCreateOperator(task_id="t", resource="customers", data={"name": "N"})
    created = bounded(lambda: op.execute({}), 20).ok()
    assert posts(server) == 1 and len(fake.objects) == 1 and created["id"] == "cus_1"
    first_post = next(i for i, r in enumerate(server.requests) if r.method == "POST")
    assert any(is_key_lookup(r) for r in server.requests[:first_post])


# ----------------------------------------------------------------------------- PATCH answered empty


def test_an_upsert_patch_answered_200_with_an_empty_body_counts_as_updated(servers, monkeypatch):
    fake = FakePiriod()
    fake.store({"name": "Old", "tax_id": "T1"})

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "PATCH":
            conn.respond(200, b"")
            return
        fake.handle(conn, request)

    server = servers(handle)
    connect(monkeypatch, server, max_retries=1, timeout=2)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "New", "tax_id": "T1"}], match_on="tax_id"
    )
    report = bounded(lambda: op.execute({}), 20).ok()
    assert report["updated"] == 1 and report["ids"] == ["cus_1"]
    assert sum(1 for r in server.requests if r.method == "PATCH") == 1 and posts(server) == 0


# ----------------------------------------------------------------------------- dry_run and read_only


@pytest.mark.parametrize("existing", [1, 150])  # full scan, lookups
def test_a_dry_run_upsert_and_action_make_no_write_even_on_a_read_only_connection(servers, monkeypatch, existing):
    fake = FakePiriod()
    for n in range(existing):
        fake.store({"name": "x", "tax_id": f"E{n}"})
    server = serve(servers, monkeypatch, fake, read_only=True)
    records = [{"name": "y", "tax_id": "E0"}, {"name": "z", "tax_id": "NEW"}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", dry_run=True)
    report = bounded(lambda: op.execute({}), 20).ok()
    assert report["created"] == 1 and report["updated"] == 1
    assert writes(server) == []


def test_read_only_refuses_every_write_operator_before_any_request(servers, monkeypatch):
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake, read_only=True)
    as_task(monkeypatch, 2)  # a retried task would look first: not even that lookup
    ops = [
        PiriodUpsertOperator(task_id="u", resource="customers", records=[{"tax_id": "T"}], match_on="tax_id"),
        PiriodActionOperator(task_id="a", resource="subscriptions", action="cancel", object_ids=["sub_1"]),
        PiriodCreateOperator(task_id="c", resource="customers", data={"name": "x"}),
    ]
    for op in ops:
        bounded(lambda op=op: op.execute({}), 15).raised(PiriodInputError)
    hook = PiriodHook()
    for call in (
        lambda: hook.create_object("customers", {"name": "x"}, write_key="k", look_first=True),
        lambda: hook.update_object("customers", "cus_1", {"name": "x"}),
        lambda: hook.apply_action("subscriptions", "sub_1", "cancel"),
        lambda: hook.archive_object("customers", "cus_1"),
    ):
        bounded(call, 15).raised(PiriodInputError)
    assert list(server.requests) == []


# ----------------------------------------------------------------------------- the 100-per-page boundary


@pytest.mark.parametrize(("existing", "new"), [(100, 0), (101, 0), (199, 1), (200, 1), (201, 1), (99, 1)])
def test_an_upsert_at_the_page_boundary_finds_the_match_on_the_last_object(servers, monkeypatch, existing, new):
    fake = FakePiriod()
    for n in range(existing):
        fake.store({"name": "x", "tax_id": f"E{n}"})
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "x", "tax_id": f"E{existing - 1}"}] + [{"name": "n", "tax_id": f"N{n}"} for n in range(new)]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=16)
    report = bounded(lambda: op.execute({}), 30).ok()
    assert report["unchanged"] == 1 and report["created"] == new
    assert report["ids"][0] == f"cus_{existing}"
    assert posts(server) == new and len(fake.objects) == existing + new


# ----------------------------------------------------------------------------- sixteen workers, out of order


def test_sixteen_workers_against_out_of_order_answers_map_each_id_to_its_record(servers, monkeypatch):
    fake = FakePiriod()
    for n in range(0, 60, 3):
        fake.store({"name": "old", "tax_id": f"T{n}"})
    rng = random.Random(11)
    lock = threading.Lock()

    def slow(conn: Conn, request: Request) -> None:
        with lock:
            delay = rng.random() * 0.06
        conn.sleep(delay)
        if request.method == "PATCH":
            object_id = request.path.strip("/").split("/")[1]
            patch = json.loads(request.raw.split(b"\r\n\r\n", 1)[1])
            with fake.lock:
                obj = next(o for o in fake.objects if o["id"] == object_id)
                obj.update(patch)
                shown = dict(obj)
            conn.respond(200, shown)
            return
        fake.handle(conn, request)

    server = servers(slow)
    connect(monkeypatch, server, max_retries=2, timeout=3)
    records = [{"name": "new", "tax_id": f"T{n}"} for n in range(60)]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=16)
    report = bounded(lambda: op.execute({}), 60).ok()
    by_id = {o["id"]: o for o in fake.objects}
    assert [by_id[i]["tax_id"] for i in report["ids"]] == [r["tax_id"] for r in records]
    assert report["created"] == 40 and report["updated"] == 20 and len(fake.objects) == 60
    keys = [key_of(o) for o in fake.objects if key_of(o)]
    assert len(keys) == len(set(keys)) == 40
    assert not leaked(json.dumps(report))
