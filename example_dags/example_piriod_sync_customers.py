"""
Every night, sync the CRM's customers into Piriod: create the new ones, update the changed, leave the rest.

``crm_customers`` reads the CRM table (here SQLite, through the ``piriod_example_sqlite`` connection;
any SQL hook works the same way) as records with Piriod's field names. ``PiriodUpsertOperator``
matches each record on its ``tax_id``: a customer Piriod does not have is created, one whose fields
differ is PATCHed with only those fields, an equal one is left alone. Creates are exactly-once: a
write key in each customer's ``metadata`` lets a retried task, or a lost answer, find what was
already created instead of creating it twice. ``report`` prints the counts. ``max_active_runs=1``: two
runs syncing the same records at once would each find a customer missing and each create it (Piriod
has no unique key to stop the second), so a sync DAG runs one run at a time.

The table: ``crm_customers(tax_id TEXT PRIMARY KEY, name TEXT, email TEXT, country TEXT, crm_id TEXT)``;
the connection, e.g.
``AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE='{"conn_type": "sqlite", "host": "/tmp/piriod_example/crm.db"}'``.

    airflow dags test example_piriod_sync_customers
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_piriod.operators.piriod import PiriodUpsertOperator

SQLITE_CONN_ID = "piriod_example_sqlite"

with DAG(
    dag_id="example_piriod_sync_customers",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "piriod"],
) as dag:

    @task
    def crm_customers() -> list[dict]:
        """The CRM's customers as Piriod records: Piriod's field names, the CRM id kept in metadata."""
        from airflow.providers.sqlite.hooks.sqlite import SqliteHook

        rows = SqliteHook(sqlite_conn_id=SQLITE_CONN_ID).get_records(
            "SELECT tax_id, name, email, country, crm_id FROM crm_customers ORDER BY tax_id"
        )
        return [
            {"tax_id": tax_id, "name": name, "email": email, "country": country, "metadata": {"crm_id": crm_id}}
            for tax_id, name, email, country, crm_id in rows
        ]

    sync = PiriodUpsertOperator(
        task_id="sync_to_piriod",
        resource="customers",
        records=crm_customers(),
        match_on="tax_id",
        max_workers=8,
        retries=2,  # safe: a retry finds what the failed try created
    )

    @task
    def report(result: dict) -> None:
        """One line for whoever reads the run: what changed in Piriod."""
        print(
            f"Piriod customers: {result['created']} created, {result['updated']} updated, "
            f"{result['unchanged']} unchanged"
        )

    report(sync.output)
