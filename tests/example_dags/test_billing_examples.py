"""The billing example DAGs (invoices, payments, subscriptions) under dag.test() against the emulator.

Values are read back from Airflow's metadata database (and from the SQLite file the DAG wrote),
and compared with the emulator's records, money as Decimal.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.compat import airflow_v3
from airflow_provider_piriod.testing.billing_data import BIG_TOTAL_INVOICE_ID
from tests.example_dags.test_example_dags import load_dag, return_values, run, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")


def as_api_json(record: dict) -> dict:
    """An emulator record (every amount a Decimal) as the hooks decode Piriod's JSON (long amounts only)."""
    return jsoncodec.loads(jsoncodec.dumps(record))


def received_values(run_id: str) -> dict[tuple[str, int], object]:
    """Every return_value XCom of the run as a downstream task receives it: through Airflow's own deserialiser."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if airflow_v3():
            from airflow.models.xcom import XComModel
            from airflow.sdk.bases.xcom import BaseXCom  # what a task's XCom pull runs

            rows = session.scalars(
                select(XComModel).where(XComModel.run_id == run_id, XComModel.key == "return_value")
            ).all()
            return {(row.task_id, row.map_index): BaseXCom.deserialize_value(row) for row in rows}
        from airflow.models.xcom import XCom

        # the raw column: loading XCom rows as objects gives the UI's rendering instead of the value
        rows = session.execute(
            select(XCom.task_id, XCom.map_index, XCom.value).where(XCom.run_id == run_id, XCom.key == "return_value")
        ).all()
        return {
            (task_id, map_index): XCom.deserialize_value(SimpleNamespace(value=value))
            for task_id, map_index, value in rows
        }


def invoice_polls(emulator, invoice_id: str) -> list[float]:
    return [e["time"] for e in emulator.requests() if e["path"] == f"/invoices/{invoice_id}/"]


# ---------------------------------------------------------------------- wait for payment


def test_wait_for_payment_defers_until_paid_and_the_order_gets_every_digit(piriod_emulator):
    assert piriod_emulator.record("invoices", BIG_TOTAL_INVOICE_ID)["status"] == "finalized"
    # request 1: the sensor's own check (finalized, so it defers); request 2: the trigger's first poll;
    # request 3, one poke_interval later: paid
    piriod_emulator.update("invoices", BIG_TOTAL_INVOICE_ID, status="paid", after_requests=3)
    dag_run = run(load_dag("example_piriod_wait_for_payment"), run_conf={"invoice_id": BIG_TOTAL_INVOICE_ID})
    assert dag_run.state == "success", task_states(dag_run)

    paid = piriod_emulator.record("invoices", BIG_TOTAL_INVOICE_ID)
    assert paid["status"] == "paid" and paid["total"] == Decimal("123456789012345.67")
    received = received_values(dag_run.run_id)
    invoice = received[("wait_until_paid", -1)]
    assert invoice == as_api_json(paid)
    assert type(invoice["total"]) is Decimal and str(invoice["total"]) == "123456789012345.67"
    fulfilled = received[("fulfil_order", -1)]
    assert fulfilled["total"] == "123456789012345.67" and fulfilled["currency"] == "USD"
    assert fulfilled["items"] == ["Licencia corporativa plurianual"]
    polls = invoice_polls(piriod_emulator, BIG_TOTAL_INVOICE_ID)
    assert len(polls) == 3 and polls[2] - polls[1] >= 4.5  # it deferred: the trigger slept its poke_interval


def test_wait_for_payment_fails_at_once_when_the_invoice_becomes_uncollectible(piriod_emulator):
    invoice = piriod_emulator.create("invoices", status="finalized")
    piriod_emulator.update("invoices", invoice["id"], status="uncollectible", after_requests=2)
    dag_run = run(load_dag("example_piriod_wait_for_payment"), run_conf={"invoice_id": invoice["id"]})
    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states["wait_until_paid"] == "failed" and states["fulfil_order"] == "upstream_failed"
    assert len(invoice_polls(piriod_emulator, invoice["id"])) == 2  # no waiting for the week-long timeout
    assert return_values(dag_run.run_id) == {}


# ---------------------------------------------------------------------- daily revenue


def day_after_big_invoice(emulator) -> datetime:
    """The logical date of a manual run whose data interval is the big invoice's day (the day before it)."""
    day = datetime.fromisoformat(emulator.record("invoices", BIG_TOTAL_INVOICE_ID)["date"])
    return day.replace(tzinfo=timezone.utc) + timedelta(days=1)


def read_table(path, table: str) -> dict[str, dict]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in db.execute(f"SELECT * FROM {table}")}


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


@pytest.mark.piriod_emulator(customers=300)  # a few invoices share the big invoice's day, some paid
def test_daily_revenue_loads_the_days_invoices_and_their_payments_with_exact_money(piriod_emulator, warehouse):
    dag_run = run(load_dag("example_piriod_daily_revenue"), logical_date=day_after_big_invoice(piriod_emulator))
    assert dag_run.state == "success", task_states(dag_run)

    day = f"{dag_run.data_interval_start:%Y-%m-%d}"
    assert dag_run.data_interval_end - dag_run.data_interval_start == timedelta(days=1)
    invoices = {r["id"]: r for r in piriod_emulator.records("invoices") if r["date"] == day}
    assert BIG_TOTAL_INVOICE_ID in invoices and len(invoices) > 1
    payment_ids = {p for invoice in invoices.values() for p in invoice["payments"]}
    payments = {r["id"]: r for r in piriod_emulator.records("payments") if r["id"] in payment_ids}
    assert payments, "the seed should give the day's invoices some payments"

    rows = read_table(warehouse, "piriod_invoices")
    assert set(rows) == set(invoices)
    for invoice_id, row in rows.items():
        assert Decimal(row["total"]) == invoices[invoice_id]["total"] and row["date"] == day
        assert jsoncodec.loads(row["payload"]) == as_api_json(invoices[invoice_id])
    assert rows[BIG_TOTAL_INVOICE_ID]["total"] == "123456789012345.67"
    payment_rows = read_table(warehouse, "piriod_payments")
    assert set(payment_rows) == set(payments)
    assert all(
        Decimal(row["amount"]) == payments[pid]["amount"] and row["invoice_date"] == day
        for pid, row in payment_rows.items()
    )

    invoiced: dict[str, Decimal] = {}
    for invoice in invoices.values():
        if invoice["status"] != "draft":
            invoiced[invoice["currency"]] = invoiced.get(invoice["currency"], Decimal(0)) + invoice["total"]
    summary = received_values(dag_run.run_id)[("load", -1)]
    assert {key: summary[key] for key in ("days", "invoices", "payments")} == {
        "days": [day, day],
        "invoices": len(invoices),
        "payments": len(payments),
    }
    assert {currency: Decimal(text) for currency, text in summary["invoiced"].items()} == invoiced  # summed exactly
    assert Decimal(summary["invoiced"]["USD"]) - Decimal("123456789012345.67") == sum(
        i["total"]
        for i in invoices.values()
        if i["currency"] == "USD" and i["status"] != "draft" and i["id"] != BIG_TOTAL_INVOICE_ID
    )


@pytest.mark.piriod_emulator(customers=300)
def test_daily_revenue_rerun_replaces_that_day_only(piriod_emulator, warehouse):
    logical_date = day_after_big_invoice(piriod_emulator)
    day = f"{logical_date - timedelta(days=1):%Y-%m-%d}"
    assert run(load_dag("example_piriod_daily_revenue"), logical_date=logical_date).state == "success"
    with sqlite3.connect(warehouse) as db:  # another day, loaded earlier
        db.execute(
            "INSERT INTO piriod_invoices (id, date, total, payload) VALUES ('inv_other_day', '2026-01-05', "
            "'10.00', '{}')"
        )
    first = read_table(warehouse, "piriod_invoices")
    moved = next(i for i in first if i not in (BIG_TOTAL_INVOICE_ID, "inv_other_day"))
    piriod_emulator.update("invoices", moved, date="2026-01-06")  # re-dated in Piriod since the first run
    piriod_emulator.update("invoices", BIG_TOTAL_INVOICE_ID, status="paid")

    dag_run = run(load_dag("example_piriod_daily_revenue"), logical_date=logical_date)
    assert dag_run.state == "success", task_states(dag_run)
    second = read_table(warehouse, "piriod_invoices")
    assert set(second) == set(first) - {moved}  # no duplicates, the re-dated one gone from this day
    assert second["inv_other_day"] == first["inv_other_day"]  # other days untouched
    assert second[BIG_TOTAL_INVOICE_ID]["status"] == "paid"
    day_rows = {i for i, row in second.items() if row["date"] == day}
    assert day_rows == {r["id"] for r in piriod_emulator.records("invoices") if r["date"] == day}


# ---------------------------------------------------------------------- dunning


def test_dunning_pairs_each_subscription_needing_attention_with_its_contacts(piriod_emulator):
    dag_run = run(load_dag("example_piriod_dunning"))
    assert dag_run.state == "success", task_states(dag_run)

    subscriptions = [
        as_api_json(s) for s in piriod_emulator.records("subscriptions") if s["status"] == "needs_attention"
    ]
    assert subscriptions, "the seed should have subscriptions that need attention"
    customers = {s["customer"] for s in subscriptions}
    contacts = [as_api_json(c) for c in piriod_emulator.records("contacts") if c["customer"] in customers]
    values = received_values(dag_run.run_id)
    by_id = sorted(values[("subscriptions_needing_attention", -1)], key=lambda s: s["id"])
    assert by_id == sorted(subscriptions, key=lambda s: s["id"])
    assert sorted(values[("their_contacts", -1)], key=lambda c: c["id"]) == sorted(contacts, key=lambda c: c["id"])

    notifications = {n["subscription"]: n for n in values[("plan_notifications", -1)]}
    assert set(notifications) == {s["id"] for s in subscriptions}
    for subscription in subscriptions:
        note = notifications[subscription["id"]]
        own = [c for c in contacts if c["customer"] == subscription["customer"] and c["email"]]
        collections = [c for c in own if c["collections"]]
        expected = collections or [c for c in own if c["invoicing"]] or own
        assert note["customer"] == subscription["customer"]
        assert note["recipients"] == [{"name": c["name"], "email": c["email"]} for c in expected]
    assert values[("notify", -1)] == sum(bool(n["recipients"]) for n in notifications.values())


def test_dunning_skips_a_day_with_nothing_to_chase(piriod_emulator):
    for subscription in piriod_emulator.records("subscriptions"):
        if subscription["status"] == "needs_attention":
            piriod_emulator.update("subscriptions", subscription["id"], status="active")
    dag_run = run(load_dag("example_piriod_dunning"))
    assert dag_run.state == "success"
    states = task_states(dag_run)
    assert states["contact_filters"] == states["their_contacts"] == states["notify"] == "skipped"
    assert not [e for e in piriod_emulator.requests() if e["path"] == "/contacts/"]
