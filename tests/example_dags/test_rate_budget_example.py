"""The rate-budget example DAG under dag.test(), against a rate-limited emulator."""

from __future__ import annotations

import pytest

from tests.example_dags.test_example_dags import load_dag, return_values, run

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_every_batch_is_fetched_through_the_rate_limit(piriod_emulator):
    """Three batches of 20 ids at 20 requests/s: each mapped copy returns its customers; 429s were waited out."""
    piriod_emulator.set_rate_limit(20, burst=2)
    dag_run = run(load_dag("example_piriod_rate_budget"), run_conf={"batches": 3, "batch_size": 20})
    assert dag_run.state == "success"
    values = return_values(dag_run.run_id)
    batches = values[("deal_customer_ids", -1)]
    records = {r["id"]: r for r in piriod_emulator.customers()}
    dealt = [i for batch in batches for i in batch]
    assert len(batches) == 3 and len(dealt) == len(set(dealt)) == 60 and set(dealt) <= set(records)
    assert [values[("fetch_batch", index)] for index in range(3)] == [[records[i] for i in b] for b in batches]
    assert any(entry["status"] == 429 for entry in piriod_emulator.requests())
