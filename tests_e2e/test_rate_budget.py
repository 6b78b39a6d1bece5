"""Fifty tasks pulling customers at once from one rate-limited workspace (run by scripts/e2e.sh)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

import test_deployment
from test_deployment import emulator, mapped_instances, moment, return_value, run_dag

api = test_deployment.api  # the fixture: a session on Airflow's REST API

DAG_ID = "example_piriod_rate_budget"
LIMIT = 50.0  # requests per second the emulator accepts while the test runs (bursts of 5)
BATCHES, BATCH_SIZE = 50, 30  # 1,500 customers fetched: 30 s of the budget at the least


@pytest.fixture
def rate_limited_emulator():
    """The emulator answering 429 (with Retry-After) beyond ``LIMIT`` requests per second, for this test only."""
    emulator("PUT", "rate_limit", json={"per_second": LIMIT})
    try:
        yield
    finally:
        emulator("PUT", "rate_limit", json={"per_second": 0})


def test_fifty_tasks_share_one_rate_limit(api, rate_limited_emulator):
    """Every task succeeds with every customer; the pull runs at the limit, without hammering it with retries."""
    before = emulator("GET", "")["requests"]
    run_id = run_dag(api, DAG_ID, {"batches": BATCHES, "batch_size": BATCH_SIZE})

    batches = return_value(api, DAG_ID, run_id, "deal_customer_ids")
    assert len(batches) == BATCHES and all(len(batch) == BATCH_SIZE for batch in batches)
    records = {c["id"]: c for c in emulator("GET", "customers")}
    for index, batch in enumerate(batches):
        assert return_value(api, DAG_ID, run_id, "fetch_batch", index) == [records[i] for i in batch]

    instances = mapped_instances(api, DAG_ID, run_id, "fetch_batch")
    assert len(instances) == BATCHES
    first_start, last_end = min(map(start, instances)).timestamp(), max(map(end, instances)).timestamp()
    # the customers fetched by id while the batches ran (other DAGs of the deployment may add a few)
    fetches = [
        e
        for e in emulator("GET", "requests")
        if e["n"] > before and is_customer_fetch(e["path"]) and first_start <= e["time"] <= last_end
    ]
    answered = [e for e in fetches if e["status"] == 200]
    throttled = [e for e in fetches if e["status"] == 429]
    assert not Counter(f"/customers/{i}/" for batch in batches for i in batch) - Counter(e["path"] for e in answered)
    assert len(answered) + len(throttled) == len(fetches)  # nothing else went wrong
    pull = fetches[-1]["time"] - fetches[0]["time"]
    share = len(throttled) / len(fetches)
    print(
        f"rate budget: {len(instances)} tasks on {sorted({ti['hostname'] for ti in instances})} fetched "
        f"{len(answered)} customers at {LIMIT:g} requests/s: {len(fetches)} requests, {share:.1%} answered 429; "
        f"requests over {pull:.1f} s ({len(answered) / pull:.1f} answered/s), "
        f"tasks over {last_end - first_start:.1f} s"
    )
    assert pull >= (len(answered) - 5) / LIMIT * 0.98  # the limit held (the test measured what it claims)
    assert share < 0.5  # the hooks slowed down rather than retrying into the limit
    assert pull < 3 * len(answered) / LIMIT + 30  # and kept the budget in use


def is_customer_fetch(path: str) -> bool:
    """``/customers/{id}/``: one customer by id (not the list the ids were dealt from)."""
    return path.startswith("/customers/") and path.count("/") == 3


def start(ti: dict) -> datetime:
    return moment(ti["start_date"])


def end(ti: dict) -> datetime:
    return moment(ti["end_date"])
