"""
Wait, on the triggerer, until a new customer finishes onboarding (status ``active``), then fetch it
and start billing.

The sensor checks once right away; if the customer is not active yet it defers to
``PiriodCustomerTrigger`` and frees its worker slot. An ``archived`` customer fails the wait at
once instead of at the timeout. Deferrable mode needs a running triggerer (``airflow triggerer``).

    airflow dags test example_piriod_wait_for_activation -c '{"customer_id": "cus_..."}'
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator
from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor

with DAG(
    dag_id="example_piriod_wait_for_activation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"customer_id": Param("cus_01H8XYZ123ABC", type="string", description="Piriod customer id")},
    tags=["example", "piriod"],
) as dag:
    wait_until_active = PiriodCustomerSensor(
        task_id="wait_until_active",
        customer_id="{{ params.customer_id }}",
        target_status="active",
        deferrable=True,
        poke_interval=5,
        timeout=60 * 60,
    )

    customer = PiriodCustomerOperator(task_id="get_customer", customer_id="{{ params.customer_id }}")

    @task
    def start_billing(customer: dict) -> str:
        """What a billing kickoff would do with the freshly active customer."""
        message = f"Billing {customer['name']} in {customer.get('currency') or 'the default currency'} from today."
        print(message)
        return message

    wait_until_active >> customer
    start_billing(customer.output)
