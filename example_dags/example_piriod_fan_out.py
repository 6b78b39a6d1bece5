"""
Fan out over customer ids with dynamic task mapping: one operator instance per id.

An upstream task picks the ids (here: the first ``limit`` customers of a country), the operator
is mapped over them with ``.expand(customer_id=...)``, and a final task sees every customer's JSON.

    airflow dags test example_piriod_fan_out -c '{"country": "CO", "limit": 5}'
"""

from __future__ import annotations

from collections import Counter

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator

with DAG(
    dag_id="example_piriod_fan_out",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "country": Param("CL", enum=["CL", "MX", "CO"]),
        "limit": Param(5, type="integer", minimum=1, maximum=100),
    },
    tags=["example", "piriod"],
) as dag:

    @task
    def pick_customer_ids(**context) -> list[str]:
        """The first ``limit`` customers of ``country``, newest first."""
        params = context["params"]
        customers = PiriodHook().iter_customers({"country": params["country"]}, page_size=params["limit"])
        return [customer.id for _, customer in zip(range(params["limit"]), customers, strict=False)]

    fetched = PiriodCustomerOperator.partial(task_id="fetch_customer").expand(customer_id=pick_customer_ids())

    @task
    def summarize(customers: list[dict]) -> dict[str, int]:
        """Count the fetched customers by status.

        ``customers`` is Airflow's lazy sequence of the mapped results. Read it by index up to its
        length: a ``for`` loop asks for one item past the end, which Airflow logs as an error
        ("XCom not found") before the loop stops.
        """
        by_status = dict(Counter(customers[index]["status"] for index in range(len(customers))))
        print(f"{len(customers)} customers: {by_status}")
        return by_status

    summarize(fetched.output)
