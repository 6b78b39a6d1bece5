"""What the end-to-end tests share: the REST API session, polling, and stopping or restarting a component.

scripts/e2e.sh exports the deployment's environment and keeps the pids of the components a test may
restart (the API server, the triggerer) in ``$E2E_WORK/<name>.pid``; every pid listed there is stopped
at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

API = os.environ["AIRFLOW_API_URL"]
EMULATOR = os.environ["EMULATOR_URL"]
WORK = Path(os.environ["E2E_WORK"])


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
        except (requests.HTTPError, requests.ConnectionError) as exc:
            result, error = None, exc
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what} (last error: {error})")


def returned_values(api: requests.Session, dag_id: str, task_id: str) -> list:
    """Everything ``task_id`` returned (a list each) in every successful run of ``dag_id``, concatenated."""
    runs = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    values: list = []
    for run in runs:
        if run["state"] != "success":
            continue
        response = api.get(
            f"{API}/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"deserialize": "true", "stringify": "false"},
        )
        if response.ok:
            values.extend(response.json()["value"])
    return values


def component_log(name: str) -> str:
    """Everything the component ``name`` and its restarted copies wrote."""
    return "".join(path.read_text(errors="replace") for path in sorted((WORK / "logs").glob(f"{name}*.log")))


def stop_component(name: str) -> None:
    """SIGTERM the running component ``name`` and wait until it is gone."""
    pid = int((WORK / f"{name}.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    poll(f"the {name} to stop", 120, lambda: not _alive(pid))


def start_component(name: str, *args: str) -> None:
    """Another ``airflow <name> <args>`` with the deployment's settings; its pid replaces the old one."""
    airflow = Path(sys.executable).with_name("airflow")
    log = (WORK / "logs" / f"{name}-restarted.log").open("ab")
    process = subprocess.Popen([str(airflow), name, *args], stdout=log, stderr=subprocess.STDOUT)
    (WORK / f"{name}.pid").write_text(str(process.pid))


def _alive(pid: int) -> bool:
    """Running, not exited (an exited child stays a zombie until its parent reaps it)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False
