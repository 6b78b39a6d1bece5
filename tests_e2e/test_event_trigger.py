"""PiriodEventTrigger on the deployment's real triggerer: new customers become DAG runs, across a restart.

Run by scripts/e2e.sh (see ``e2e_support``).
"""

from __future__ import annotations

import time
from collections import Counter

import requests
from e2e_support import (
    API,
    EMULATOR,
    api_session,
    component_log,
    poll,
    returned_values,
    start_component,
    stop_component,
)

DAG_ID = "example_piriod_on_new_customer"
ASSET = "piriod_new_customers"


def new_customers(count: int) -> list[str]:
    """Sign-ups, as Piriod would record them now."""
    ids = []
    for _ in range(count):
        response = requests.post(f"{EMULATOR}/__emulator__/customers", json={}, timeout=30)
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


def announced_ids(api: requests.Session) -> list[str]:
    """Every id in every event the watcher put on the asset (repeats kept, so a test can count them)."""
    assets = api.get(f"{API}/api/v2/assets", params={"name_pattern": ASSET}).json()["assets"]
    if not assets:
        return []
    response = api.get(f"{API}/api/v2/assets/events", params={"asset_id": assets[0]["id"], "limit": 100})
    response.raise_for_status()
    payloads = [(event.get("extra") or {}).get("payload") or {} for event in response.json()["asset_events"]]
    return [object_id for payload in payloads for object_id in payload.get("ids", [])]


def welcomed_ids(api: requests.Session) -> list[str]:
    """The customer ids every successful run's send_welcome task returned."""
    return returned_values(api, DAG_ID, "send_welcome")


def triggerer_log() -> str:
    return component_log("triggerer")


def test_new_customers_become_runs_and_a_restarted_triggerer_neither_repeats_nor_misses():
    api = api_session()
    poll(f"{DAG_ID} to be parsed", 180, lambda: api.get(f"{API}/api/v2/dags/{DAG_ID}").ok)
    api.patch(f"{API}/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    poll("the watcher to take its starting point", 180, lambda: "Watching for new customers" in triggerer_log())

    first = new_customers(3)
    poll("events for the first sign-ups", 120, lambda: set(announced_ids(api)) >= set(first))
    assert sorted(poll("the announced ids", 60, lambda: announced_ids(api))) == sorted(first)
    time.sleep(6)  # the watcher stores its watermark 3 s after handing Airflow the events (event_sync_grace)

    stop_component("triggerer")
    missed = new_customers(4)  # created while no triggerer runs
    start_component("triggerer", "--skip-serve-logs")  # no log server on 0.0.0.0
    poll("the restarted watcher to resume", 180, lambda: "resumed from the Asset State Store" in triggerer_log())
    poll("events for the sign-ups made while it was down", 120, lambda: set(announced_ids(api)) >= set(missed))
    time.sleep(15)  # a few more polls: nothing may arrive twice

    announced = poll("the announced ids", 60, lambda: announced_ids(api))
    assert Counter(announced) == Counter(first + missed), "each new customer exactly once, history never"
    poll("the runs to welcome every new customer", 240, lambda: sorted(welcomed_ids(api)) == sorted(first + missed))
