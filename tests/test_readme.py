"""The README's code runs as written (blocks marked ``<!-- readme-test: NAME -->``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_piriod.compat import airflow_v3

README = (Path(__file__).parents[1] / "README.md").read_text()


def snippet(name: str) -> str:
    match = re.search(rf"<!-- readme-test: {name} -->\n```python\n(.*?)```", README, re.S)
    assert match, f"README block {name!r} not found"
    return match.group(1)


def test_hook_usage_runs_against_the_emulator(piriod_emulator, capsys):
    exec(compile(snippet("hook"), "README.md:hook", "exec"), {})
    log_line = re.compile(r"^(\[\d{4}-|\d{4}-\d\d-\d\dT)")  # Airflow's own log lines, on 2.11 and 3
    printed = [line for line in capsys.readouterr().out.splitlines() if not log_line.match(line)]
    chileans = [c for c in piriod_emulator.customers() if c["country"]["id"] == "CL"]
    assert printed[0] == str(len(chileans))
    assert len(printed) == 1 + sum(c["created"] >= "2025-01-01" for c in chileans)


def test_fixture_example_passes_as_a_users_test_file(tmp_path):
    (tmp_path / "test_from_readme.py").write_text(snippet("fixture"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_operator_snippets_build_valid_tasks():
    from airflow_provider_piriod.compat import DAG

    namespace: dict = {}
    with DAG(dag_id="readme_operator_snippets", schedule=None):
        exec(compile(snippet("operator"), "README.md:operator", "exec"), namespace)
    assert namespace["one"].customer_id == "{{ params.customer_id }}"
    assert namespace["many"].ignore_missing is True and len(namespace["many"].customer_ids) == 2
    assert namespace["to_file"].output_path.startswith("file:///data/piriod/")


def test_sensor_snippets_build_valid_tasks():
    from airflow_provider_piriod.compat import DAG

    namespace: dict = {}
    with DAG(dag_id="readme_sensor_snippets", schedule=None):
        exec(compile(snippet("sensor"), "README.md:sensor", "exec"), namespace)
    assert namespace["active"].deferrable is True and namespace["active"].fail_statuses == ["archived"]
    assert namespace["new_signups"].min_count == 10 and namespace["new_signups"].mode == "reschedule"


def test_resources_example_runs_against_the_emulator(piriod_emulator, capsys):
    namespace: dict = {}
    exec(compile(snippet("resources"), "README.md:resources", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].endswith(" 123456789012345.67")
    customer = namespace["customer_id"]
    open_invoices = [
        i
        for i in piriod_emulator.records("invoices")
        if i["customer"] == customer and i["status"] in ("finalized", "draft")
    ]
    assert sum(line.startswith("inv_") for line in printed) == len(open_invoices)


@pytest.mark.skipif(not airflow_v3(), reason="AssetWatcher is Airflow 3")
def test_event_driven_example_builds_a_watched_asset_and_reads_folded_events():
    from types import SimpleNamespace

    from airflow_provider_piriod.events import event_payload

    namespace: dict = {}
    exec(compile(snippet("event-driven"), "README.md:event-driven", "exec"), namespace)
    (watcher,) = namespace["succeeded_payments"].watchers
    assert watcher.trigger.serialize()[1]["filters"] == {"status": "succeeded"}
    events = {"a": [SimpleNamespace(extra={"payload": event_payload("payments", ["pay_1", "pay_2"])})] * 2}
    assert namespace["payment_ids"].function(triggering_asset_events=events) == ["pay_1", "pay_2"]


def test_the_writing_example_runs_against_the_emulator(piriod_emulator, capsys):
    exec(compile(snippet("writes"), "README.md:writes", "exec"), {})
    log_line = re.compile(r"^(\[\d{4}-|\d{4}-\d\d-\d\dT)")
    printed = [line for line in capsys.readouterr().out.splitlines() if not log_line.match(line)]
    assert printed == ["finalized 59.97 af1-"]
    created = [c for c in piriod_emulator.objects("customers") if c.get("tax_id") == "76.123.456-7"]
    assert len(created) == 1 and created[0]["email"] == "pagos@losandes.example"
