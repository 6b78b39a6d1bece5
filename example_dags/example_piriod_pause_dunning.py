"""
Every morning, pause the subscriptions of customers a dunning process gave up on; a dry run first.

``overdue_invoices`` lists the finalized invoices whose due date passed ``grace_days`` ago (still
unpaid: a paid invoice is ``paid``, not ``finalized``). ``billed_subscriptions`` collects their
subscriptions, ``their_subscriptions`` reads them, and ``active_ones`` keeps those still active (Piriod
refuses to pause a cancelled one). ``plan`` runs ``PiriodActionOperator`` with ``dry_run=True``: it reads each
subscription and returns what would be paused, writing nothing, so the plan is in XCom and the log
before anything changes. ``pause`` then pauses them; a subscription already paused counts as
unchanged, and a retry never pauses twice.

    airflow dags test example_piriod_pause_dunning -c '{"grace_days": 30}'
"""

from __future__ import annotations

from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.exceptions import AirflowSkipException
    from airflow.models.param import Param

from airflow_provider_piriod.operators.piriod import PiriodActionOperator, PiriodReadOperator


def ref_id(value: Any) -> Any:
    """A related object's id, whether Piriod sent the id or the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


with DAG(
    dag_id="example_piriod_pause_dunning",
    schedule="0 7 * * 1-5",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"grace_days": Param(30, type="integer", minimum=0, description="days past due before pausing")},
    tags=["example", "piriod"],
) as dag:
    overdue = PiriodReadOperator(
        task_id="overdue_invoices",
        resource="invoices",
        filters={
            "status": "finalized",
            "due_date__lte": "{{ macros.ds_add(ds, -params.grace_days) }}",
        },
    )

    @task
    def billed_subscriptions(invoices: list[dict]) -> list[str]:
        """The subscriptions the overdue invoices bill; none skips the rest of the run."""
        ids = sorted({ref_id(invoice["subscription"]) for invoice in invoices if invoice.get("subscription")})
        if not ids:
            raise AirflowSkipException("No overdue invoice bills a subscription")
        return ids

    subscriptions = PiriodReadOperator(
        task_id="their_subscriptions", resource="subscriptions", object_ids=billed_subscriptions(overdue.output)
    )

    @task
    def active_ones(subscriptions: list[dict]) -> list[str]:
        ids = [subscription["id"] for subscription in subscriptions if subscription.get("status") == "active"]
        if not ids:
            raise AirflowSkipException("Every subscription of an overdue invoice is paused or ended already")
        return ids

    to_pause = active_ones(subscriptions.output)
    plan = PiriodActionOperator(
        task_id="plan", resource="subscriptions", action="pause", object_ids=to_pause, dry_run=True
    )
    pause = PiriodActionOperator(task_id="pause", resource="subscriptions", action="pause", object_ids=to_pause)
    plan >> pause
