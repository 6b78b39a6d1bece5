"""
Every day, pull the Piriod customers created in the data interval (the previous day) to an NDJSON file, then load
them into a SQLite table.

The operator streams page by page to ``output_path`` (memory stays flat however many customers
there are) and returns ``{"path": ..., "count": ...}``; the load task reads that file. Rows are
upserted by id, so re-running a day or overlapping interval edges cannot duplicate customers.

Connections: ``piriod_default``, and ``piriod_example_sqlite`` for the table, e.g.
``AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE='{"conn_type": "sqlite", "host": "/tmp/piriod_example/warehouse.db"}'``.
Files go under ``$PIRIOD_EXAMPLE_DATA_DIR`` (default ``/tmp/piriod_example``); any
ObjectStoragePath URI works for ``output_path`` (``s3://...`` with the Amazon provider).

    airflow dags test example_piriod_incremental_to_sqlite 2025-05-06

(The run of 2025-05-06 covers 2025-05-05, a day on which ``make emulator``'s data has three new
customers; ``piriod-emulator`` with its defaults has one.)
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

try:  # Airflow 3
    from airflow.sdk import DAG, CronDataIntervalTimetable, ObjectStoragePath, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.io.path import ObjectStoragePath
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator

SQLITE_CONN_ID = "piriod_example_sqlite"
DATA_DIR = os.environ.get("PIRIOD_EXAMPLE_DATA_DIR", "/tmp/piriod_example")
COLUMNS = ["id", "name", "email", "country", "status", "currency", "created", "payload"]

with DAG(
    dag_id="example_piriod_incremental_to_sqlite",
    # a data-interval timetable: each run covers the day before it ("@daily" alone gives
    # zero-width intervals on Airflow 3)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "piriod"],
) as dag:
    pull = PiriodCustomerOperator(
        task_id="pull_new_customers",
        filters={
            "created__gte": "{{ data_interval_start.isoformat() }}",
            "created__lte": "{{ data_interval_end.isoformat() }}",
        },
        output_path=f"file://{DATA_DIR}/customers/{{{{ ds }}}}.ndjson",
    )

    create_table = SQLExecuteQueryOperator(
        task_id="create_table",
        conn_id=SQLITE_CONN_ID,
        sql="""
            CREATE TABLE IF NOT EXISTS piriod_customers (
                id TEXT PRIMARY KEY, name TEXT, email TEXT, country TEXT, status TEXT,
                currency TEXT, created TEXT, payload TEXT NOT NULL
            )
        """,
    )

    @task
    def load(result: dict) -> int:
        """Upsert the NDJSON file's customers; returns how many rows were written."""
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        rows = []  # one data interval's customers
        with ObjectStoragePath(result["path"]).open("r") as stream:
            for line in stream.read().splitlines():
                customer = json.loads(line)
                country = customer.get("country") or {}
                rows.append(
                    (
                        customer["id"],
                        customer.get("name"),
                        customer.get("email"),
                        country.get("id") if isinstance(country, dict) else country,
                        customer.get("status"),
                        customer.get("currency"),
                        customer.get("created"),
                        line.strip(),
                    )
                )
        SqliteHook(sqlite_conn_id=SQLITE_CONN_ID).insert_rows(
            "piriod_customers", rows, target_fields=COLUMNS, replace=True, commit_every=1000
        )
        return result["count"]

    create_table >> load(pull.output)
