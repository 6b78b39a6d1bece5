"""
Every day, load the invoices dated in the data interval (the previous day) and their payments into
SQLite, and report the day's invoiced amount per currency.

* Invoices: ``PiriodReadOperator`` on ``invoices`` with ``date__gte``/``date__lte`` set to the
  interval's first and last day (an invoice's ``date`` is a calendar day, so both ends are inclusive).
* Payments: the ids each invoice lists in ``payments``, fetched concurrently by id with a second
  ``PiriodReadOperator``. That finds every attempt on the day's invoices whatever day it was made,
  with one request per payment and no list filter to keep in step with the invoices'.
* Load: one transaction deletes the interval's rows and inserts what Piriod holds now, so a re-run
  of a day replaces that day (an invoice that changed or moved to another day is not duplicated)
  and leaves every other day alone.

Money is stored as TEXT holding the amount's exact digits (``"123456789012345.67"``), and summed
as ``Decimal``. SQLite has no decimal type: a REAL or NUMERIC column keeps a binary float, which
cannot hold every amount of 16 digits or more (cents change) and makes sums drift. Read it back with
``Decimal(text)``. The ``payload`` column keeps each object's JSON with every digit
(:func:`airflow_provider_piriod.jsoncodec.dumps`).

The day's invoices travel through XCom, fine for thousands a day; for more, give the invoice
task an ``output_path`` and read the NDJSON file in ``load`` as ``example_piriod_incremental_to_sqlite`` does.

Connections: ``piriod_default``, and ``piriod_example_sqlite`` for the tables, e.g.
``AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE='{"conn_type": "sqlite", "host": "/tmp/piriod_example/warehouse.db"}'``.

    airflow dags test example_piriod_daily_revenue 2026-05-13   # loads 2026-05-12, the interval before
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

try:  # Airflow 3
    from airflow.sdk import DAG, CronDataIntervalTimetable, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.operators.piriod import PiriodReadOperator

SQLITE_CONN_ID = "piriod_example_sqlite"
INVOICE_COLUMNS = ["id", "date", "customer", "number", "currency", "status", "subtotal", "tax", "total", "payload"]
PAYMENT_COLUMNS = ["id", "invoice", "invoice_date", "date", "currency", "status", "amount", "payload"]


def ref_id(value: Any) -> Any:
    """A related object's id, whether Piriod sent the id or the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def exact_text(amount: Any) -> str | None:
    """An amount's exact digits: a float from the JSON shows them in its shortest form; a Decimal holds them
    (as does the string XCom carries for an amount it cannot hold as a Decimal)."""
    return None if amount is None else str(Decimal(str(amount)))


def upsert(table: str, columns: list[str]) -> str:
    """An insert that moves a row to its new day if the object changed days since an earlier run."""
    return f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


with DAG(
    dag_id="example_piriod_daily_revenue",
    # a data-interval timetable: each run covers the day before it ("@daily" alone gives
    # zero-width intervals on Airflow 3)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "piriod"],
) as dag:
    invoices = PiriodReadOperator(
        task_id="invoices_of_the_day",
        resource="invoices",
        filters={
            "date__gte": "{{ data_interval_start | ds }}",
            "date__lte": "{{ macros.ds_add(data_interval_end | ds, -1) }}",  # the interval's last whole day
        },
    )

    @task
    def payment_ids(invoices: list[dict]) -> list:
        """Every payment attempt the day's invoices list, in order."""
        return [ref_id(payment) for invoice in invoices for payment in invoice.get("payments") or []]

    payments = PiriodReadOperator(
        task_id="their_payments", resource="payments", object_ids=payment_ids(invoices.output)
    )

    create_tables = SQLExecuteQueryOperator(
        task_id="create_tables",
        conn_id=SQLITE_CONN_ID,
        sql=[
            """CREATE TABLE IF NOT EXISTS piriod_invoices (
                id TEXT PRIMARY KEY, date TEXT NOT NULL, customer TEXT, number TEXT, currency TEXT, status TEXT,
                subtotal TEXT, tax TEXT, total TEXT, payload TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS piriod_payments (
                id TEXT PRIMARY KEY, invoice TEXT NOT NULL, invoice_date TEXT NOT NULL, date TEXT, currency TEXT,
                status TEXT, amount TEXT, payload TEXT NOT NULL)""",
        ],
    )

    @task
    def load(invoices: list[dict], payments: list[dict], **context) -> dict:
        """Replace the interval's rows in one transaction; returns the counts and the invoiced amount per currency."""
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        first = context["data_interval_start"].strftime("%Y-%m-%d")
        last = (context["data_interval_end"] - timedelta(days=1)).strftime("%Y-%m-%d")
        day_of = {invoice["id"]: invoice["date"] for invoice in invoices}
        invoice_rows = [
            (
                i["id"],
                i["date"],
                ref_id(i.get("customer")),
                i.get("number"),
                i.get("currency"),
                i.get("status"),
                exact_text(i.get("subtotal")),
                exact_text(i.get("tax")),
                exact_text(i.get("total")),
                jsoncodec.dumps(i),
            )
            for i in invoices
        ]
        payment_rows = [
            (
                str(p["id"]),
                ref_id(p["invoice"]),
                day_of[ref_id(p["invoice"])],
                p.get("date"),
                p.get("currency"),
                p.get("status"),
                exact_text(p.get("amount")),
                jsoncodec.dumps(p),
            )
            for p in payments
        ]
        with closing(SqliteHook(sqlite_conn_id=SQLITE_CONN_ID).get_conn()) as db, db:  # one transaction
            db.execute("DELETE FROM piriod_payments WHERE invoice_date BETWEEN ? AND ?", (first, last))
            db.execute("DELETE FROM piriod_invoices WHERE date BETWEEN ? AND ?", (first, last))
            db.executemany(upsert("piriod_invoices", INVOICE_COLUMNS), invoice_rows)
            db.executemany(upsert("piriod_payments", PAYMENT_COLUMNS), payment_rows)
        invoiced: dict[str, Decimal] = defaultdict(Decimal)
        for invoice in invoices:
            if invoice.get("status") != "draft":
                invoiced[invoice["currency"]] += Decimal(exact_text(invoice["total"]))
        summary = {
            "days": [first, last],
            "invoices": len(invoice_rows),
            "payments": len(payment_rows),
            "invoiced": {currency: str(amount) for currency, amount in sorted(invoiced.items())},
        }
        print(summary)
        return summary

    create_tables >> load(invoices.output, payments.output)
