"""
A DAG scheduled on Piriod customers: it runs whenever a PiriodCustomerOperator that uses the
``piriod_default`` connection succeeds (each one updates the Asset ``piriod://piriod_default/customers``).
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11 (where Assets are called Datasets)
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_piriod.operators.piriod import customers_asset

with DAG(
    dag_id="example_piriod_asset_consumer",
    schedule=[customers_asset("piriod_default")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "piriod"],
) as dag:

    @task
    def react_to_new_customer_data(**context) -> list[str]:
        """Report which Piriod pulls triggered this run."""
        events = context.get("triggering_asset_events") or context.get("triggering_asset_events") or {}
        sources = [
            f"{event.source_dag_id}.{event.source_task_id}"
            for asset_events in events.values()
            for event in asset_events
        ]
        print(f"Triggered by {sources}")
        return sources

    react_to_new_customer_data()
