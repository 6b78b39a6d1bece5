"""
Welcome each new Piriod customer soon after they sign up: an event-driven DAG, no schedule to tune.

The Asset ``piriod_new_customers`` is watched by PiriodEventTrigger: the triggerer lists customers
created since its watermark every ``poll_interval`` seconds (one request per poll) and turns each batch of
new ones into an asset event, which runs this DAG. Customers that existed when the watcher started are
never announced. Airflow may fold several events into one run; ``triggering_ids`` reads them all.

Unpause the DAG to start watching. Needs Airflow 3 (AssetWatcher); on Airflow 2.11 this file defines
no DAG. The payment twin is in the README ("Event-driven DAGs").
"""

from __future__ import annotations

import os

import pendulum

from airflow_provider_piriod.events import triggering_ids
from airflow_provider_piriod.operators.piriod import PiriodReadOperator
from airflow_provider_piriod.triggers.piriod import PiriodEventTrigger

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, AssetWatcher, task
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 2.11 has no event-driven scheduling
    AssetWatcher = None

# how often the triggerer asks Piriod; the end-to-end suite sets a few seconds
POLL_INTERVAL = float(os.environ.get("PIRIOD_EXAMPLE_POLL_INTERVAL", "60"))

if AssetWatcher is not None:
    new_customers = Asset(
        name="piriod_new_customers",
        watchers=[
            AssetWatcher(
                name="piriod_new_customers",
                trigger=PiriodEventTrigger(resource="customers", poll_interval=POLL_INTERVAL),
            )
        ],
    )

    with DAG(
        dag_id="example_piriod_on_new_customer",
        schedule=[new_customers],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["example", "piriod"],
    ) as dag:

        @task
        def new_customer_ids(triggering_asset_events=None) -> list[str]:
            """The ids in every event behind this run (several events may share one run)."""
            ids = triggering_ids(triggering_asset_events, resource="customers")
            if not ids:
                raise AirflowSkipException("This run was not started by new Piriod customers")
            return ids

        read_new_customers = PiriodReadOperator(
            task_id="read_new_customers", resource="customers", object_ids=new_customer_ids()
        )

        @task
        def send_welcome(customers: list[dict]) -> list[str]:
            """Stands in for the welcome email: one line per new customer."""
            for customer in customers:
                print(f"Welcome to the service, {customer['name']} <{customer.get('email') or 'no email'}>")
            return [customer["id"] for customer in customers]

        send_welcome(read_new_customers.output)
