"""
Wait in reschedule mode until a marketing campaign has brought in at least three customers, then
greet them.

Reschedule mode gives the worker slot back between checks; each check is one small count request
(``page_size=1``) until there are enough, then the matching customers are read and pushed to XCom.

    airflow dags test example_piriod_wait_for_signups -c '{"campaign": "spring-sale"}'
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor

with DAG(
    dag_id="example_piriod_wait_for_signups",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"campaign": Param("spring-sale", type="string", description="metadata.campaign of the signups")},
    tags=["example", "piriod"],
) as dag:
    signups = PiriodCustomerSensor(
        task_id="wait_for_signups",
        filters={"metadata__campaign": "{{ params.campaign }}"},
        min_count=3,
        mode="reschedule",
        poke_interval=2,
        timeout=60 * 60,
    )

    @task
    def greet(customers: list[dict]) -> list[str]:
        """One greeting per new customer."""
        greetings = [f"Hola {customer['name']}!" for customer in customers]
        print("\n".join(greetings))
        return greetings

    greet(signups.output)
