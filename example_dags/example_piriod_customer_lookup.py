"""
Look up one Piriod customer and use its email in a downstream task.

The operator pushes the customer's JSON (exactly as Piriod sent it) to XCom; ``customer.output``
hands it to the next task.

    airflow dags test example_piriod_customer_lookup -c '{"customer_id": "cus_..."}'
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

with DAG(
    dag_id="example_piriod_customer_lookup",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"customer_id": Param("cus_01H8XYZ123ABC", type="string", description="Piriod customer id")},
    tags=["example", "piriod"],
) as dag:
    customer = PiriodCustomerOperator(task_id="get_customer", customer_id="{{ params.customer_id }}")

    @task
    def welcome_message(customer: dict) -> str:
        """Compose the message an onboarding email would carry."""
        recipient = customer.get("email") or "the billing contact on file"
        message = f"Welcome to Piriod billing, {customer['name']}! Invoices will go to {recipient}."
        print(message)
        return message

    welcome_message(customer.output)
