"""
Bill last month's usage: one draft invoice per customer with exact money, finalized, then wait until paid.

``usage`` stands in for the warehouse query that sums each customer's metered usage; quantities and
unit prices are ``Decimal`` strings, so no float ever touches the money. ``invoice_data`` turns a
customer's rows into a draft invoice's fields; ``PiriodCreateOperator`` is mapped over them (one
task per customer, each created exactly once: a retry finds the invoice its failed try created).
``PiriodActionOperator`` finalizes them all (an invoice already finalized counts as done), and a
mapped ``PiriodSensor`` waits on the triggerer until each is paid (deferrable: no worker slot is held
for the days a payment takes; ``PIRIOD_EXAMPLE_POKE_INTERVAL`` seconds between checks, 10 minutes by default).

    airflow dags test example_piriod_invoice_usage -c '{"customers": ["cus_..."]}'
"""

from __future__ import annotations

import os
from decimal import Decimal

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_piriod.operators.piriod import PiriodActionOperator, PiriodCreateOperator
from airflow_provider_piriod.sensors.piriod import PiriodSensor

UNIT_PRICES = {"api_calls": Decimal("0.0125"), "seats": Decimal("19.99")}
POKE_INTERVAL = float(os.environ.get("PIRIOD_EXAMPLE_POKE_INTERVAL", "600"))

with DAG(
    dag_id="example_piriod_invoice_usage",
    schedule="0 6 1 * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"customers": Param([], type="array", description="Piriod customer ids to bill (the demo's usage)")},
    tags=["example", "piriod"],
) as dag:

    @task
    def usage(params: dict | None = None) -> list[dict]:
        """Stand-in for the warehouse: each customer's usage of the month, quantities as text."""
        customers = (params or {}).get("customers") or []
        return [
            {"customer": customer, "metric": metric, "quantity": str(quantity)}
            for n, customer in enumerate(customers)
            for metric, quantity in (("api_calls", 1200 + 10 * n), ("seats", 3 + n))
        ]

    @task
    def invoice_data(rows: list[dict]) -> list[dict]:
        """One draft invoice per customer; every amount a Decimal string computed exactly."""
        by_customer: dict[str, list[dict]] = {}
        for row in rows:
            price = UNIT_PRICES[row["metric"]]
            line = {"description": row["metric"], "quantity": row["quantity"], "unit_price": str(price)}
            by_customer.setdefault(row["customer"], []).append(line)
        for customer, lines in by_customer.items():
            total = sum(Decimal(line["quantity"]) * Decimal(line["unit_price"]) for line in lines)
            print(f"{customer}: {len(lines)} lines, {total} before tax")
        return [{"customer": customer, "lines": lines} for customer, lines in by_customer.items()]

    drafts = PiriodCreateOperator.partial(task_id="create_draft", resource="invoices", retries=2).expand(
        data=invoice_data(usage())
    )

    @task
    def invoice_ids(invoices: list[dict]) -> list[str]:
        return [invoice["id"] for invoice in invoices]

    ids = invoice_ids(drafts.output)
    finalize = PiriodActionOperator(task_id="finalize", resource="invoices", action="finalize", object_ids=ids)
    paid = PiriodSensor.partial(
        task_id="wait_until_paid",
        resource="invoices",
        target_status="paid",  # fails at once on "uncollectible"
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=30 * 24 * 3600,
    ).expand(object_id=ids)
    finalize >> paid
