"""PiriodEventTrigger on the deployment's real triggerer: new customers become DAG runs, across a restart.

Run by scripts/e2e.sh, which exports the deployment's environment and keeps the triggerer's pid in
``$E2E_WORK/triggerer.pid`` (every pid listed in ``$E2E_WORK/*.pid`` is stopped at the end).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

API = os.environ["AIRFLOW_API_URL"]
EMULATOR = os.environ["EMULATOR_URL"]
WORK = Path(os.environ["E2E_WORK"])
DAG_ID = "example_piriod_on_new_customer"
ASSET = "piriod_new_customers"


def api_session() -> requests.Session:
    session = requests.Session()
    token = requests.get(f"{API}/auth/token", timeout=30).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def poll(what: str, seconds: float, check):
    """``check()`` every second until it is truthy; an API answering an error now and then is asked again."""
    deadline, error = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        try:
            result = check()
        except requests.HTTPError as exc:
            result, error = None, exc
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what} (last API error: {error})")


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
    runs = api.get(f"{API}/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    ids: list[str] = []
    for run in runs:
        if run["state"] != "success":
            continue
        response = api.get(
            f"{API}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/send_welcome/xcomEntries/return_value",
            params={"deserialize": "true", "stringify": "false"},
        )
        if response.ok:
            ids.extend(response.json()["value"])
    return ids


def triggerer_log() -> str:
    return "".join(path.read_text(errors="replace") for path in sorted((WORK / "logs").glob("triggerer*.log")))


def stop_triggerer() -> None:
    """SIGTERM the running triggerer and wait until it is gone."""
    pid = int((WORK / "triggerer.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    poll("the triggerer to stop", 120, lambda: not _alive(pid))


def _alive(pid: int) -> bool:
    """Running, not exited (an exited child stays a zombie until its parent reaps it)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def start_triggerer() -> None:
    """Another triggerer with the deployment's settings; its pid replaces the old one for the cleanup."""
    airflow = Path(sys.executable).with_name("airflow")
    log = (WORK / "logs" / "triggerer-restarted.log").open("ab")
    command = [str(airflow), "triggerer", "--skip-serve-logs"]  # no log server on 0.0.0.0
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    (WORK / "triggerer.pid").write_text(str(process.pid))


def test_new_customers_become_runs_and_a_restarted_triggerer_neither_repeats_nor_misses():
    api = api_session()
    poll(f"{DAG_ID} to be parsed", 180, lambda: api.get(f"{API}/api/v2/dags/{DAG_ID}").ok)
    api.patch(f"{API}/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    poll("the watcher to take its starting point", 180, lambda: "Watching for new customers" in triggerer_log())

    first = new_customers(3)
    poll("events for the first sign-ups", 120, lambda: set(announced_ids(api)) >= set(first))
    assert sorted(poll("the announced ids", 60, lambda: announced_ids(api))) == sorted(first)
    time.sleep(6)  # the watcher stores its watermark 3 s after handing Airflow the events (event_sync_grace)

    stop_triggerer()
    missed = new_customers(4)  # created while no triggerer runs
    start_triggerer()
    poll("the restarted watcher to resume", 180, lambda: "resumed from the Asset State Store" in triggerer_log())
    poll("events for the sign-ups made while it was down", 120, lambda: set(announced_ids(api)) >= set(missed))
    time.sleep(15)  # a few more polls: nothing may arrive twice

    announced = poll("the announced ids", 60, lambda: announced_ids(api))
    assert Counter(announced) == Counter(first + missed), "each new customer exactly once, history never"
    poll("the runs to welcome every new customer", 240, lambda: sorted(welcomed_ids(api)) == sorted(first + missed))
