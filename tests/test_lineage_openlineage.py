"""Lineage end to end: example DAGs emit OpenLineage events naming Piriod inputs and file outputs;
without the openlineage provider the package still imports and reads.

Each test runs Airflow in a child process: the suite keeps OpenLineage off (tests/conftest.py), and
its listener is set up once per process, so only a fresh process can turn it on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_DAGS

ROOT = Path(__file__).parents[1]

RUN_EXAMPLES = """
import importlib.util, json, sys
from datetime import datetime, timezone
from pathlib import Path

def load(dag_id):
    spec = importlib.util.spec_from_file_location(dag_id, Path(sys.argv[1]) / f"{dag_id}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag

from airflow.utils import db

from airflow_provider_piriod.compat import airflow_v3

db.resetdb()  # this child's own AIRFLOW_HOME: no runs left by other tests
date = "logical_date" if airflow_v3() else "execution_date"
states = {
    # first: its @task reads through PiriodHook, and the process-wide collector starts empty
    "fan_out": load("example_piriod_fan_out").test(run_conf={"country": "CL", "limit": 2}).state,
    "incremental": load("example_piriod_incremental_to_sqlite").test(
        **{date: datetime(2025, 3, 2, tzinfo=timezone.utc)}
    ).state,
}
print("STATES " + json.dumps(states))
"""

WITHOUT_OPENLINEAGE = """
import importlib.metadata, json, sys

OPENLINEAGE = ("airflow.providers.openlineage", "openlineage")


class NoOpenLineage:
    # makes the openlineage provider and client unimportable, as if they were not installed
    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in OPENLINEAGE):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def without_openlineage(metadata):
    # leaves the openlineage distributions (and so the provider's entry point) out of the installed ones
    found = metadata.distributions

    def distributions(**kwargs):
        for dist in found(**kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if not name.startswith(("apache-airflow-providers-openlineage", "openlineage")):
                yield dist

    metadata.distributions = distributions


sys.meta_path.insert(0, NoOpenLineage())
without_openlineage(importlib.metadata)
try:
    import importlib_metadata
    without_openlineage(importlib_metadata)
except ImportError:
    pass

import airflow_provider_piriod
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator

airflow_provider_piriod.get_provider_info()
written = PiriodCustomerOperator(task_id="pull", filters={}, output_path=sys.argv[1]).execute({})
first = PiriodHook().list_customers(page_size=5)[0].id
try:
    import airflow.providers.openlineage
    blocked = False
except ImportError:
    blocked = True
from airflow.providers_manager import ProvidersManager

result = {
    "written": written,
    "first": first,
    "blocked": blocked,
    "loaded": sorted(m for m in sys.modules if m.startswith(OPENLINEAGE)),
    "providers": sorted(ProvidersManager().providers),
}
print("RESULT " + json.dumps(result))
"""


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter of this environment; the JSON it printed after its marker word."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(("STATES ", "RESULT "))]
    return json.loads(line.split(" ", 1)[1])


def completed(events: list[dict], job: str) -> list[dict]:
    return [event for event in events if event["eventType"] == "COMPLETE" and event["job"]["name"] == job]


def names(datasets: list[dict]) -> list[tuple[str, str]]:
    return [(dataset["namespace"], dataset["name"]) for dataset in datasets]


@pytest.mark.piriod_emulator(customers=4000, seed=21)
def test_read_tasks_emit_the_piriod_input_and_the_file_output(piriod_emulator, tmp_path):
    """COMPLETE events name the Piriod input and the NDJSON file (a @task's hook read too); no event a Piriod output."""
    events_file, data_dir = tmp_path / "events.ndjson", tmp_path / "data"
    states = run_python(
        RUN_EXAMPLES,
        str(EXAMPLE_DAGS),
        env={
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__OPENLINEAGE__DISABLED": "false",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "piriod-tests",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "PIRIOD_EXAMPLE_DATA_DIR": str(data_dir),
            "AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}),
        },
    )
    assert states == {"fan_out": "success", "incremental": "success"}
    text = events_file.read_text()
    assert piriod_emulator.token not in text
    events = [json.loads(line) for line in text.splitlines()]
    piriod = (f"piriod://{piriod_emulator.url.split('://', 1)[1]}", f"{piriod_emulator.workspace}/customers")

    (pull,) = completed(events, "example_piriod_incremental_to_sqlite.pull_new_customers")
    (written,) = (data_dir / "customers").glob("*.ndjson")
    assert names(pull["inputs"]) == [piriod]
    assert names(pull["outputs"]) == [("file", str(written))]
    schema = {field["name"] for field in pull["inputs"][0]["facets"]["schema"]["fields"]}
    assert {"id", "email", "country", "created"} <= schema

    (pick,) = completed(events, "example_piriod_fan_out.pick_customer_ids")  # hook-level lineage
    assert piriod in names(pick["inputs"])
    fetches = completed(events, "example_piriod_fan_out.fetch_customer")
    assert len(fetches) == 2 and all(names(fetch["inputs"]) == [piriod] for fetch in fetches)
    piriod_outputs = [name for event in events for name in names(event["outputs"]) if name[0].startswith("piriod:")]
    assert piriod_outputs == []  # START/FAIL fall back to outlets: the conn-id default outlet is no dataset


def test_the_provider_imports_and_reads_without_the_openlineage_provider(piriod_emulator, tmp_path):
    """With airflow.providers.openlineage unimportable the package imports, the operator writes and the hook reads."""
    target = tmp_path / "customers.ndjson"
    result = run_python(WITHOUT_OPENLINEAGE, f"file://{target}")
    assert result["blocked"] is True and result["loaded"] == []
    assert result["written"] == {"path": f"file://{target}", "count": len(piriod_emulator.customers())}
    assert len(target.read_text().splitlines()) == len(piriod_emulator.customers())
    assert result["first"] in {record["id"] for record in piriod_emulator.customers()}
    assert "airflow-provider-piriod" in result["providers"]
    assert "apache-airflow-providers-openlineage" not in result["providers"]
