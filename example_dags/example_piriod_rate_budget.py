"""
Many tasks reading one Piriod workspace at once, under one rate limit.

An upstream task deals the customer ids into ``batches`` lists of ``batch_size`` (going round every
customer as often as needed), and ``PiriodCustomerOperator`` is mapped over them: each copy fetches
its batch ``max_workers`` requests at a time. Every task builds its own hook, so on the
CeleryExecutor the copies run in separate processes on separate hosts and share nothing but the
workspace's rate limit. When Piriod answers 429, a task waits as told (a 429 spends no retry) and
slows down to the rate it gets through. How many copies run at once is Airflow's to bound: give
Piriod tasks a pool (README, "Running at scale").

    airflow dags test example_piriod_rate_budget -c '{"batches": 4, "batch_size": 10}'
"""

from __future__ import annotations

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
    dag_id="example_piriod_rate_budget",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "batches": Param(50, type="integer", minimum=1, maximum=200),
        "batch_size": Param(30, type="integer", minimum=1, maximum=500),
    },
    tags=["example", "piriod"],
) as dag:

    @task
    def deal_customer_ids(**context) -> list[list[str]]:
        """``batches`` lists of ``batch_size`` customer ids, dealt from every customer in turn."""
        params = context["params"]
        ids = [customer["id"] for customer in PiriodHook().iter_customer_json(page_size=100)]
        if not ids:
            return []
        size = params["batch_size"]
        return [[ids[(batch * size + i) % len(ids)] for i in range(size)] for batch in range(params["batches"])]

    PiriodCustomerOperator.partial(task_id="fetch_batch", max_workers=4).expand(customer_ids=deal_customer_ids())
