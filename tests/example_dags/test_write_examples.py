"""The write example DAGs under dag.test() against the emulator: customer sync, usage invoices, dunning pauses."""

from __future__ import annotations

import json
import sqlite3
import threading
from decimal import Decimal

import pytest

from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD
from tests.example_dags.test_example_dags import load_dag, return_values, run, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")


# ---------------------------------------------------------------------- sync customers


@pytest.fixture
def crm(tmp_path, monkeypatch, piriod_emulator):
    """A CRM table: two customers Piriod has (one with a new email), three it does not."""
    path = tmp_path / "crm.db"
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    known = [c for c in piriod_emulator.records("customers") if c.get("tax_id") and c["status"] == "active"][:2]
    rows = [(c["tax_id"], c["name"], c["email"], c["country"]["id"], c["metadata"].get("crm_id")) for c in known]
    rows[1] = (*rows[1][:2], "new.address@example.com", *rows[1][3:])
    rows += [(f"99.000.00{n}-K", f"Nuevo Cliente {n}", f"nuevo{n}@example.cl", "CL", f"CRM-NEW-{n}") for n in range(3)]
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE crm_customers (tax_id TEXT PRIMARY KEY, name TEXT, email TEXT, country TEXT, crm_id TEXT)"
        )
        db.executemany("INSERT INTO crm_customers VALUES (?, ?, ?, ?, ?)", rows)
    return SimpleRows(rows, known)


class SimpleRows:
    def __init__(self, rows, known):
        self.rows, self.known = rows, known

    @property
    def tax_ids(self) -> list[str]:
        return [row[0] for row in self.rows]


def customers_with(emulator, tax_id: str) -> list[dict]:
    return [c for c in emulator.records("customers") if c.get("tax_id") == tax_id]


def test_sync_creates_the_new_updates_the_changed_and_a_second_run_writes_nothing(piriod_emulator, crm):
    dag_run = run(load_dag("example_piriod_sync_customers"))
    assert dag_run.state == "success", task_states(dag_run)
    report = return_values(dag_run.run_id)[("sync_to_piriod", -1)]
    assert {k: report[k] for k in ("created", "updated", "unchanged", "failed")} == {
        "created": 3,
        "updated": 1,
        "unchanged": 1,
        "failed": 0,
    }
    assert all(len(customers_with(piriod_emulator, tax_id)) == 1 for tax_id in crm.tax_ids)
    assert customers_with(piriod_emulator, crm.tax_ids[1])[0]["email"] == "new.address@example.com"
    created = customers_with(piriod_emulator, crm.tax_ids[2])[0]
    assert created["metadata"]["crm_id"] == "CRM-NEW-0" and WRITE_KEY_FIELD in created["metadata"]

    writes_before = piriod_emulator.count_requests("POST") + piriod_emulator.count_requests("PATCH")
    again = run(load_dag("example_piriod_sync_customers"))
    assert again.state == "success"
    assert return_values(again.run_id)[("sync_to_piriod", -1)]["unchanged"] == 5
    assert piriod_emulator.count_requests("POST") + piriod_emulator.count_requests("PATCH") == writes_before


@pytest.mark.parametrize("kind", ["commit_then_drop", "commit_then_status"])
def test_sync_through_lost_answers_creates_each_customer_once(piriod_emulator, crm, kind):
    piriod_emulator.add_fault(kind, path="/customers/", method="POST", times=2)  # Piriod stores it, the answer is lost
    dag_run = run(load_dag("example_piriod_sync_customers"))
    assert dag_run.state == "success", task_states(dag_run)
    assert all(len(customers_with(piriod_emulator, tax_id)) == 1 for tax_id in crm.tax_ids)
    assert piriod_emulator.count_requests("POST", "/customers/") == 3  # never resent


# ---------------------------------------------------------------------- invoice usage


def pay_when_finalized(emulator, stop: threading.Event) -> None:
    """Piriod's customers paying: each invoice this run finalized becomes paid."""
    while not stop.wait(0.05):
        for invoice in emulator.records("invoices"):
            if invoice["status"] == "finalized" and WRITE_KEY_FIELD in (invoice.get("metadata") or {}):
                emulator.update("invoices", invoice["id"], status="paid")


def test_usage_becomes_exact_draft_invoices_that_are_finalized_and_waited_on_until_paid(piriod_emulator, monkeypatch):
    monkeypatch.setenv("PIRIOD_EXAMPLE_POKE_INTERVAL", "0.5")
    customers = [c["id"] for c in piriod_emulator.records("customers")[:2]]
    stop = threading.Event()
    payer = threading.Thread(target=pay_when_finalized, args=(piriod_emulator, stop), daemon=True)
    payer.start()
    try:
        dag_run = run(load_dag("example_piriod_invoice_usage"), run_conf={"customers": customers})
    finally:
        stop.set()
        payer.join(10)
    assert dag_run.state == "success", task_states(dag_run)
    ours = [i for i in piriod_emulator.records("invoices") if WRITE_KEY_FIELD in (i.get("metadata") or {})]
    assert sorted(i["customer"] for i in ours) == sorted(customers)  # one each: exactly once
    assert {i["status"] for i in ours} == {"paid"}
    first = next(i for i in ours if i["customer"] == customers[0])
    assert [str(line["unit_price"]) for line in first["lines"]] == ["0.0125", "19.99"]
    assert Decimal(str(first["total"])) == Decimal("1200") * Decimal("0.0125") + 3 * Decimal("19.99")
    finalized = return_values(dag_run.run_id)[("finalize", -1)]
    assert finalized["updated"] == 2 and finalized["failed"] == 0


# ---------------------------------------------------------------------- pause dunning


def test_dunning_plans_first_then_pauses_only_active_subscriptions_of_overdue_invoices(piriod_emulator):
    dag_run = run(load_dag("example_piriod_pause_dunning"), run_conf={"grace_days": 30})
    assert dag_run.state == "success", task_states(dag_run)
    values = return_values(dag_run.run_id)
    to_pause = values[("active_ones", -1)]
    assert to_pause, "the emulator's data should have overdue invoices of active subscriptions"
    plan, pause = values[("plan", -1)], values[("pause", -1)]
    assert [line["action"] for line in plan["plan"]] == ["updated"] * len(to_pause)  # what would be paused
    assert pause["updated"] == len(to_pause) and pause["ids"] == to_pause
    assert {piriod_emulator.record("subscriptions", s)["status"] for s in to_pause} == {"paused"}
    pauses = [e for e in piriod_emulator.requests() if e["method"] == "POST" and e["path"].endswith("/pause/")]
    assert len(pauses) == len(to_pause)  # the dry run sent none


def test_the_sync_runs_one_run_at_a_time():
    """Two runs at once would each find a new customer missing and each create it: no key in Piriod stops that."""
    assert load_dag("example_piriod_sync_customers").max_active_runs == 1
