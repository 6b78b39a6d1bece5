"""
Record each new payment within seconds of Piriod announcing it: webhooks for speed, polling as the backstop.

The Asset ``piriod://piriod_default/payments`` gets events two ways. Piriod's webhook (registered at
``https://<API server>/piriod/webhooks/piriod_default``, the connection's extra ``webhook_secret`` set to its
secret) makes the API server record one within a second of each ``payment.created``. ``PiriodEventTrigger``
on the same asset, with a long ``poll_interval``, catches what webhooks miss: deliveries Piriod gave up on,
or sent while the API server was down. ``triggering_ids`` reads both kinds, each payment once, so a payment
announced by both is recorded once.

Unpause the DAG to start watching. Needs Airflow 3 (plugins in the API server, AssetWatcher); on Airflow 2.11
this file defines no DAG.
"""

from __future__ import annotations

import os

import pendulum

from airflow_provider_piriod.events import triggering_ids
from airflow_provider_piriod.operators.piriod import PiriodReadOperator, piriod_asset
from airflow_provider_piriod.triggers.piriod import PiriodEventTrigger

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, AssetWatcher, task
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 2.11 has no event-driven scheduling
    AssetWatcher = None

# the backstop's polling interval: long, since webhooks bring payments within seconds
BACKSTOP_INTERVAL = float(os.environ.get("PIRIOD_EXAMPLE_BACKSTOP_INTERVAL", "900"))

if AssetWatcher is not None:
    payments = Asset(
        piriod_asset("piriod_default", "payments").uri,  # where the webhook receiver records its events
        watchers=[
            AssetWatcher(
                name="piriod_payments_backstop",
                trigger=PiriodEventTrigger(resource="payments", poll_interval=BACKSTOP_INTERVAL),
            )
        ],
    )

    with DAG(
        dag_id="example_piriod_on_payment",
        schedule=[payments],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["example", "piriod"],
    ) as dag:

        @task
        def payment_ids(triggering_asset_events=None) -> list[str]:
            """The payments behind this run, from webhooks and the backstop alike, each once."""
            ids = triggering_ids(triggering_asset_events, resource="payments")
            if not ids:
                raise AirflowSkipException("This run was not started by new Piriod payments")
            return ids

        read_payments = PiriodReadOperator(task_id="read_payments", resource="payments", object_ids=payment_ids())

        @task
        def record(payments: list[dict]) -> list[str]:
            """Stands in for the ledger entry: one line per payment."""
            for payment in payments:
                print(
                    f"Payment {payment['id']}: {payment.get('currency')} {payment.get('amount')} ({payment['status']})"
                )
            return [payment["id"] for payment in payments]

        record(read_payments.output)
