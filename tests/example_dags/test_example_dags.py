"""Example DAGs import cleanly and run end to end under dag.test() against the emulator.

Values are read back from Airflow's metadata database, not from the tasks, and compared with
the emulator's records.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_piriod.compat import airflow_v3
from tests.conftest import EXAMPLE_DAGS

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_dag(dag_id: str):
    """Import the example file like the dag processor does and return its DAG."""
    spec = importlib.util.spec_from_file_location(dag_id, EXAMPLE_DAGS / f"{dag_id}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run(dag, **kwargs):
    """dag.test() on either Airflow line (2.11 calls the logical date execution_date)."""
    if not airflow_v3() and "logical_date" in kwargs:
        kwargs["execution_date"] = kwargs.pop("logical_date")
    return dag.test(**kwargs)


def return_values(run_id: str) -> dict[tuple[str, int], object]:
    """Every return_value XCom of the run, as stored in the metadata database."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if airflow_v3():
            from airflow.models.xcom import XComModel

            rows = session.execute(
                select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
                    XComModel.run_id == run_id, XComModel.key == "return_value"
                )
            ).all()
            return {(task_id, map_index): value for task_id, map_index, value in rows}
        from airflow.models.xcom import XCom

        rows = session.scalars(select(XCom).where(XCom.run_id == run_id, XCom.key == "return_value")).all()
        return {(row.task_id, row.map_index): row.value for row in rows}


def task_states(dag_run) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}


def test_every_example_dag_imports_without_errors():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS), **({} if airflow_v3() else {"include_examples": False}))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_piriod_customer_lookup",
        "example_piriod_incremental_to_sqlite",
        "example_piriod_fan_out",
        "example_piriod_asset_consumer",
        "example_piriod_wait_for_activation",
        "example_piriod_wait_for_signups",
        "example_piriod_daily_revenue",
        "example_piriod_wait_for_payment",
        "example_piriod_dunning",
        "example_piriod_rate_budget",
        "example_piriod_sync_customers",
        "example_piriod_invoice_usage",
        "example_piriod_pause_dunning",
    } | (
        {"example_piriod_on_new_customer", "example_piriod_on_payment"} if airflow_v3() else set()
    )  # AssetWatcher is Airflow 3
    assert all("piriod" in dag.tags for dag in bag.dags.values())


def test_lookup_pushes_the_customer_and_the_downstream_task_uses_its_email(piriod_emulator):
    record = next(r for r in piriod_emulator.customers() if r["email"])
    dag_run = run(load_dag("example_piriod_customer_lookup"), run_conf={"customer_id": record["id"]})
    assert dag_run.state == "success"
    values = return_values(dag_run.run_id)
    assert values[("get_customer", -1)] == record
    assert record["email"] in values[("welcome_message", -1)]


def test_a_failing_lookup_pushes_nothing(piriod_emulator):
    dag_run = run(load_dag("example_piriod_customer_lookup"), run_conf={"customer_id": "cus_does_not_exist"})
    assert dag_run.state == "failed"
    assert task_states(dag_run)["get_customer"] == "failed"
    assert return_values(dag_run.run_id) == {}


@pytest.mark.piriod_emulator(customers=4000, seed=21)
def test_incremental_pull_writes_the_interval_to_a_file_and_loads_sqlite(piriod_emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("PIRIOD_EXAMPLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_EXAMPLE_SQLITE",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}),
    )
    dag_run = run(
        load_dag("example_piriod_incremental_to_sqlite"), logical_date=datetime(2025, 3, 2, tzinfo=timezone.utc)
    )
    assert dag_run.state == "success", task_states(dag_run)

    start, end = dag_run.data_interval_start, dag_run.data_interval_end
    expected = {r["id"]: r for r in piriod_emulator.customers() if start <= datetime.fromisoformat(r["created"]) <= end}
    assert expected, f"the seed should put customers in {start}..{end} (logical date {dag_run.logical_date})"
    values = return_values(dag_run.run_id)
    path = f"file://{tmp_path}/data/customers/{dag_run.logical_date:%Y-%m-%d}.ndjson"
    assert values[("pull_new_customers", -1)] == {"path": path, "count": len(expected)}
    written = [
        json.loads(line) for line in (tmp_path / "data" / "customers" / path.rsplit("/", 1)[1]).read_text().splitlines()
    ]
    assert {r["id"]: r for r in written} == expected
    assert values[("load", -1)] == len(expected)
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        rows = db.execute("SELECT id, payload FROM piriod_customers").fetchall()
    assert {row[0]: json.loads(row[1]) for row in rows} == expected


def test_fan_out_maps_one_task_per_id(piriod_emulator):
    dag_run = run(load_dag("example_piriod_fan_out"), run_conf={"country": "CO", "limit": 4})
    assert dag_run.state == "success"
    values = return_values(dag_run.run_id)
    ids = values[("pick_customer_ids", -1)]
    assert len(ids) == 4
    records = {r["id"]: r for r in piriod_emulator.customers()}
    assert [values[("fetch_customer", index)] for index in range(4)] == [records[i] for i in ids]
    assert all(records[i]["country"]["id"] == "CO" for i in ids)
    statuses = [records[i]["status"] for i in ids]
    assert values[("summarize", -1)] == {s: statuses.count(s) for s in set(statuses)}


@pytest.mark.airflow3  # reads Airflow 3's asset tables; 2.11 schedules the same DAG through its Dataset
def test_a_successful_pull_schedules_the_dag_that_waits_on_the_customers_asset(piriod_emulator):
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    record = piriod_emulator.customers()[0]
    lookup = load_dag("example_piriod_customer_lookup")
    run(lookup, run_conf={"customer_id": record["id"]})  # syncs the example folder, consumer included
    with create_session() as session:  # new DAGs start paused; a paused DAG is never queued
        unpaused = session.execute(
            update(DagModel).where(DagModel.dag_id == "example_piriod_asset_consumer").values(is_paused=False)
        ).rowcount
    assert unpaused == 1
    dag_run = run(lookup, run_conf={"customer_id": record["id"]})
    assert dag_run.state == "success"
    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.uri == "piriod://piriod_default/customers")).one()
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.asset_id == asset.id, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        queued = session.scalars(
            select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset.id)
        ).all()
    assert [(e.source_dag_id, e.source_task_id) for e in events] == [("example_piriod_customer_lookup", "get_customer")]
    assert "example_piriod_asset_consumer" in queued


def test_asset_consumer_runs(piriod_emulator):
    dag_run = run(load_dag("example_piriod_asset_consumer"))  # a manual run: no triggering events
    assert dag_run.state == "success"
    assert return_values(dag_run.run_id) == {("react_to_new_customer_data", -1): []}


def test_wait_for_activation_defers_until_the_customer_flips_to_active(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending")
    # request 1: the sensor's own check (pending, so it defers); request 2: the trigger's first poll
    # (pending); request 3, one poke_interval later: active
    piriod_emulator.update_customer(signup["id"], status="active", after_requests=3)
    dag_run = run(load_dag("example_piriod_wait_for_activation"), run_conf={"customer_id": signup["id"]})
    assert dag_run.state == "success", task_states(dag_run)

    active = piriod_emulator.customer(signup["id"])
    assert active["status"] == "active"
    values = return_values(dag_run.run_id)
    assert values[("wait_until_active", -1)] == active
    assert values[("get_customer", -1)] == active
    assert active["name"] in values[("start_billing", -1)]
    polls = [e["time"] for e in piriod_emulator.requests() if e["path"] == f"/customers/{signup['id']}/"]
    assert len(polls) == 4  # sensor check, two trigger polls, the operator's fetch
    assert polls[2] - polls[1] >= 4.5  # the trigger slept its poke_interval (5 s) between polls


@pytest.mark.piriod_emulator(customers=300)
def test_fifty_mapped_tasks_fetch_their_customers(piriod_emulator):
    dag_run = run(load_dag("example_piriod_fan_out"), run_conf={"country": "CL", "limit": 50})
    assert dag_run.state == "success"
    values = return_values(dag_run.run_id)
    ids = values[("pick_customer_ids", -1)]
    records = {r["id"]: r for r in piriod_emulator.customers()}
    assert len(ids) == len(set(ids)) == 50
    assert [values[("fetch_customer", index)] for index in range(50)] == [records[i] for i in ids]
    assert sum(values[("summarize", -1)].values()) == 50


def test_the_token_never_reaches_logs_rendered_templates_or_xcom(
    piriod_emulator, monkeypatch, capfd, caplog, fast_retries
):
    from airflow.models import xcom
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    XComModel, XCom = (xcom.XComModel, None) if airflow_v3() else (None, xcom.XCom)
    from sqlalchemy import select

    token = piriod_emulator.token
    record = piriod_emulator.customers()[0]
    lookup = load_dag("example_piriod_customer_lookup")
    assert run(lookup, run_conf={"customer_id": record["id"]}).state == "success"
    assert run(load_dag("example_piriod_fan_out"), run_conf={"country": "MX", "limit": 3}).state == "success"
    # a proxy that echoes the request headers into its error page, on every request
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(piriod_emulator.connection, extra={"max_retries": 1}))
    )
    piriod_emulator.add_fault("status", status=502, times=None, body=f"upstream saw Authorization: Token {token}")
    failed = run(lookup, run_conf={"customer_id": record["id"]})
    assert failed.state == "failed"

    output = "".join(capfd.readouterr()) + caplog.text  # Airflow 3 prints task logs, 2.11 logs them
    assert "returned 502" in output and "***" in output  # the failure was logged, with the token cut out
    # dag.test() sends task logs to stdout (captured above); every file Airflow wrote is searched too,
    # the metadata database included
    airflow_files = [p for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*") if p.is_file()]
    assert any(p.name == "airflow.db" for p in airflow_files)
    with create_session() as session:
        xcom_class = XComModel if airflow_v3() else XCom
        stored = [repr(v) for v in session.scalars(select(xcom_class.value))]
        stored += [
            json.dumps(v, default=str) for v in session.scalars(select(RenderedTaskInstanceFields.rendered_fields))
        ]
    assert stored, "expected XComs and rendered fields to inspect"
    leaks = [str(p) for p in airflow_files if token.encode() in p.read_bytes()]
    leaks += [text[:80] for text in stored if token in text]
    leaks += ["captured output"] if token in output else []
    assert leaks == []


def test_wait_for_signups_reschedules_until_enough_customers_match(piriod_emulator):
    first = piriod_emulator.create_customer(metadata={"campaign": "autumn"})
    # request 1: the first check counts one signup; two more sign up just before the second check
    piriod_emulator.create_customer(metadata={"campaign": "autumn"}, after_requests=2)
    piriod_emulator.create_customer(metadata={"campaign": "autumn"}, after_requests=2)
    dag_run = run(load_dag("example_piriod_wait_for_signups"), run_conf={"campaign": "autumn"})
    assert dag_run.state == "success", task_states(dag_run)

    signups = [c for c in piriod_emulator.customers() if c["metadata"].get("campaign") == "autumn"]
    values = return_values(dag_run.run_id)
    assert sorted(values[("wait_for_signups", -1)], key=lambda c: c["id"]) == sorted(signups, key=lambda c: c["id"])
    assert len(values[("greet", -1)]) == 3 and f"Hola {first['name']}!" in values[("greet", -1)]
    counts = [e for e in piriod_emulator.requests() if dict(e["params"]).get("page_size") == "1"]
    assert len(counts) >= 2 and counts[1]["time"] - counts[0]["time"] >= 1.5  # rescheduled between checks
