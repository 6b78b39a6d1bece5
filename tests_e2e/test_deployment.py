"""The provider in a real deployment, driven only through Airflow's REST API (run by scripts/e2e.sh)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal
from itertools import combinations
from pathlib import Path

import pytest
import requests

API = os.environ["AIRFLOW_API_URL"]
EMULATOR = os.environ["EMULATOR_URL"]
WORKERS = os.environ.get("E2E_WORKERS", "").split()  # the Celery workers' host names; none on the LocalExecutor


@pytest.fixture(scope="session")
def api() -> requests.Session:
    session = requests.Session()
    token = requests.get(f"{API}/auth/token", timeout=30).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def emulator(method: str, route: str, **kwargs):
    response = requests.request(method, f"{EMULATOR}/__emulator__/{route}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def poll(what: str, seconds: float, check):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def run_dag(api, dag_id: str, conf: dict | None = None, logical_date: str | None = None, *, on_running=None) -> str:
    """Unpause, trigger and wait for one run of ``dag_id``; returns the run id."""
    poll(f"{dag_id} to be parsed", 180, lambda: api.get(f"{API}/api/v2/dags/{dag_id}").ok)
    api.patch(f"{API}/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    response = api.post(f"{API}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}})
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]
    if on_running:
        on_running(run_id)
    state = poll(f"{dag_id} to finish", 300, lambda: _finished(api, dag_id, run_id))
    assert state == "success", _states(api, dag_id, run_id)
    return run_id


def _finished(api, dag_id: str, run_id: str) -> str | None:
    state = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
    return state if state in ("success", "failed") else None


def _states(api, dag_id: str, run_id: str) -> dict:
    instances = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in instances}


def return_value(api, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
    response = api.get(
        f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
        params={"map_index": map_index, "deserialize": "true", "stringify": "false"},
    )
    response.raise_for_status()
    return response.json()["value"]


def test_customer_lookup(api):
    """The lookup example pushes the customer's JSON as Piriod sent it, and the next task uses its email."""
    record = next(c for c in emulator("GET", "customers") if c["email"])
    run_id = run_dag(api, "example_piriod_customer_lookup", {"customer_id": record["id"]})
    assert return_value(api, "example_piriod_customer_lookup", run_id, "get_customer") == record
    assert record["email"] in return_value(api, "example_piriod_customer_lookup", run_id, "welcome_message")


def test_fifty_mapped_tasks_fetch_concurrently(api):
    """The 50 mapped copies return their customers, run at the same time and, on Celery, on every worker."""
    run_id = run_dag(api, "example_piriod_fan_out", {"country": "CL", "limit": 50})
    ids = return_value(api, "example_piriod_fan_out", run_id, "pick_customer_ids")
    assert len(ids) == len(set(ids)) == 50
    records = {c["id"]: c for c in emulator("GET", "customers")}
    fetched = [return_value(api, "example_piriod_fan_out", run_id, "fetch_customer", index) for index in range(50)]
    assert fetched == [records[i] for i in ids]
    instances = mapped_instances(api, "example_piriod_fan_out", run_id, "fetch_customer")
    assert len(instances) == 50
    hosts = Counter(ti["hostname"] for ti in instances)
    print(f"fetch_customer ran on {dict(hosts)}")
    assert any(overlap(a, b) for a, b in combinations(instances, 2))
    if WORKERS:  # spread over every Celery worker, and two workers ran copies at the same time
        assert set(hosts) == set(WORKERS)
        assert any(a["hostname"] != b["hostname"] and overlap(a, b) for a, b in combinations(instances, 2))
    else:
        assert len(hosts) == 1


def mapped_instances(api, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    """Every mapped copy of ``task_id`` in the run, as the REST API lists them."""
    response = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    response.raise_for_status()
    return [ti for ti in response.json()["task_instances"] if ti["task_id"] == task_id]


def overlap(a: dict, b: dict) -> bool:
    """Whether two task instances were running at the same moment."""
    return moment(a["start_date"]) < moment(b["end_date"]) and moment(b["start_date"]) < moment(a["end_date"])


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_incremental_pull_to_sqlite(api):
    """The incremental example writes the day's customers to NDJSON and loads as many rows into SQLite."""
    run_id = run_dag(api, "example_piriod_incremental_to_sqlite", logical_date="2025-03-02T00:00:00Z")
    result = return_value(api, "example_piriod_incremental_to_sqlite", run_id, "pull_new_customers")
    assert result["count"] == return_value(api, "example_piriod_incremental_to_sqlite", run_id, "load")
    assert result["path"].endswith("/customers/2025-03-02.ndjson")


def test_deferrable_sensor_waits_on_the_triggerer(api):
    """The customer sensor defers, the triggerer polls until the customer is active, and the task resumes with it."""
    signup = emulator("POST", "customers", json={"status": "pending"})
    dag_id = "example_piriod_wait_for_activation"
    seen_states: set[str] = set()

    def activate_once_deferred(run_id: str) -> None:
        def deferred():
            instances = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
            state = next((ti["state"] for ti in instances if ti["task_id"] == "wait_until_active"), None)
            seen_states.add(state)
            return state == "deferred"

        poll("the sensor to defer", 240, deferred)
        poll("the triggerer to poll a pending customer", 120, lambda: "checking again" in trigger_log(dag_id, run_id))
        emulator("PATCH", f"customers/{signup['id']}", json={"status": "active"})

    run_id = run_dag(api, dag_id, {"customer_id": signup["id"]}, on_running=activate_once_deferred)
    assert "deferred" in seen_states
    active = emulator("GET", f"customers/{signup['id']}")
    assert active["status"] == "active"
    assert return_value(api, dag_id, run_id, "wait_until_active") == active
    assert return_value(api, dag_id, run_id, "get_customer") == active
    written_by_the_triggerer = trigger_log(dag_id, run_id)
    assert "status is 'pending'" in written_by_the_triggerer
    assert "Trigger fired event" in written_by_the_triggerer and "'status': 'success'" in written_by_the_triggerer


def test_deferrable_sensor_waits_for_an_invoice_to_be_paid(api):
    """The invoice sensor defers until the invoice is paid and pushes it with every amount exact."""
    invoice = emulator("POST", "invoices", json={"status": "finalized"})
    dag_id, task_id = "example_piriod_wait_for_payment", "wait_until_paid"
    seen_states: set[str] = set()

    def pay_once_deferred(run_id: str) -> None:
        poll("the sensor to defer", 240, lambda: task_state(api, dag_id, run_id, task_id, seen_states) == "deferred")
        poll(
            "the triggerer to poll a finalized invoice",
            120,
            lambda: "checking again" in trigger_log(dag_id, run_id, task_id),
        )
        emulator("PATCH", f"invoices/{invoice['id']}", json={"status": "paid"})

    run_id = run_dag(api, dag_id, {"invoice_id": invoice["id"]}, on_running=pay_once_deferred)
    assert "deferred" in seen_states
    paid = exact_json(requests.get(f"{EMULATOR}/__emulator__/invoices/{invoice['id']}", timeout=30))
    assert paid["status"] == "paid" and paid["id"] == invoice["id"]
    pushed = exact_json(xcom_entry(api, dag_id, run_id, task_id))["value"]
    assert pushed == paid  # the invoice JSON, every amount equal to the digits Piriod sent
    fulfilled = return_value(api, dag_id, run_id, "fulfil_order")
    assert fulfilled["invoice"] == invoice["id"] and Decimal(fulfilled["total"]) == paid["total"]
    written_by_the_triggerer = trigger_log(dag_id, run_id, task_id)
    assert "status is 'finalized', waiting for 'paid'" in written_by_the_triggerer
    assert "Trigger fired event" in written_by_the_triggerer and "'status': 'success'" in written_by_the_triggerer


def task_state(api, dag_id: str, run_id: str, task_id: str, seen: set[str]) -> str | None:
    """The task's state now (and remember every state seen)."""
    instances = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    state = next((ti["state"] for ti in instances if ti["task_id"] == task_id), None)
    seen.add(state)
    return state


def xcom_entry(api, dag_id: str, run_id: str, task_id: str) -> requests.Response:
    response = api.get(
        f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
        params={"map_index": -1, "deserialize": "true", "stringify": "false"},
    )
    response.raise_for_status()
    return response


def exact_json(response: requests.Response):
    """The body with every decimal number as a Decimal, so amounts compare digit for digit."""
    return json.loads(response.text, parse_float=Decimal)


def trigger_log(dag_id: str, run_id: str, task_id: str = "wait_until_active") -> str:
    """What the triggerer wrote for the sensor's trigger (Airflow keeps it beside the task log)."""
    folder = Path(os.environ["AIRFLOW_HOME"], "logs", f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}")
    return "".join(path.read_text() for path in sorted(folder.glob("attempt=*.log.trigger.*.log")))


def test_customer_sync_through_lost_answers_creates_each_customer_once(api):
    """The CRM sync with Piriod storing two customers and then dropping the connection: the task succeeds,
    and Piriod (the emulator) holds each customer exactly once."""
    import sqlite3
    import uuid

    run_tag = uuid.uuid4().hex[:8]
    tax_ids = [f"E2E-{run_tag}-{n}" for n in range(4)]
    crm = json.loads(os.environ["AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE"])["host"]
    with sqlite3.connect(crm) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS crm_customers (tax_id TEXT PRIMARY KEY, name TEXT, email TEXT, country TEXT,"
            " crm_id TEXT)"
        )
        db.execute("DELETE FROM crm_customers")
        db.executemany(
            "INSERT INTO crm_customers VALUES (?, ?, ?, 'CL', ?)",
            [(tax_id, f"Cliente {tax_id}", f"{tax_id.lower()}@example.cl", f"CRM-{tax_id}") for tax_id in tax_ids],
        )
    emulator("POST", "faults", json={"kind": "commit_then_drop", "method": "POST", "path": "/customers/", "times": 2})
    try:
        run_id = run_dag(api, "example_piriod_sync_customers")
    finally:
        emulator("DELETE", "faults")
    report = return_value(api, "example_piriod_sync_customers", run_id, "sync_to_piriod")
    # unpausing may start the scheduled run first (max_active_runs=1 makes ours wait): between them, 4 created
    assert report["failed"] == 0 and report["created"] + report["unchanged"] == 4
    stored = Counter(c.get("tax_id") for c in emulator("GET", "customers", params={"test_mode": "any"}))
    assert {tax_id: stored[tax_id] for tax_id in tax_ids} == dict.fromkeys(tax_ids, 1)
    dropped = [e for e in emulator("GET", "requests") if e.get("fault") == "commit_then_drop"]
    assert len(dropped) >= 2  # the fault did fire: two answers were lost after the customer was stored
