"""What a task log says when a Piriod task succeeds: one summary line per task, and no false error."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_DAGS
from tests.example_dags.test_example_dags import load_dag, return_values, run

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_fan_out_logs_one_summary_per_mapped_task_and_no_xcom_error(piriod_emulator, capfd, caplog):
    """Each mapped fetch says what it read and how; summarize reads the mapped results without an "XCom not found"."""
    dag_run = run(load_dag("example_piriod_fan_out"), run_conf={"country": "CO", "limit": 3})
    assert dag_run.state == "success"
    out, err = capfd.readouterr()
    assert "XCom not found" not in out + err + caplog.text
    summary = (
        r"Read 1 Piriod customer \(customer_id\) with 1 request in \d+\.\d\d s through connection 'piriod_default'"
    )
    # Airflow 3 prints task log lines; 2.11 prints them and hands them to logging as well
    printed, recorded = re.findall(summary, out + err), re.findall(summary, caplog.text)
    assert max(len(printed), len(recorded)) == 3, (out + err)[-3000:]


MAKEFILE = Path(__file__).parents[2] / "Makefile"


@pytest.mark.piriod_emulator(customers=500, seed=0)  # what `make emulator` serves
def test_the_incremental_examples_suggested_date_pulls_customers(piriod_emulator, tmp_path, monkeypatch):
    """The command in the incremental example's docstring writes customers when run against `make emulator`."""
    assert re.search(r"^CUSTOMERS \?= 500$", MAKEFILE.read_text(), re.M)
    dag = load_dag("example_piriod_incremental_to_sqlite")
    source = (EXAMPLE_DAGS / "example_piriod_incremental_to_sqlite.py").read_text()
    day = re.search(r"airflow dags test example_piriod_incremental_to_sqlite (\d{4}-\d\d-\d\d)", source)
    assert day, "the docstring names a date to run"
    monkeypatch.setenv("PIRIOD_EXAMPLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}),
    )
    logical_date = datetime.fromisoformat(day.group(1)).replace(tzinfo=timezone.utc)
    dag_run = run(dag, logical_date=logical_date)
    assert dag_run.state == "success"
    assert return_values(dag_run.run_id)[("load", -1)] == 3
