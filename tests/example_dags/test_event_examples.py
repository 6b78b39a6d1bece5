"""The event-driven example: what it watches, how its tasks read the events, and how it degrades on 2.11."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_piriod.compat import airflow_v3
from airflow_provider_piriod.events import event_payload
from tests.example_dags.test_example_dags import load_dag, return_values, run, task_states

pytestmark = pytest.mark.usefixtures("airflow_db")
DAG_ID = "example_piriod_on_new_customer"


@pytest.mark.skipif(not airflow_v3(), reason="AssetWatcher is Airflow 3")
def test_the_dag_is_scheduled_on_an_asset_watched_for_new_customers():
    """One watcher, a PiriodEventTrigger on customers with configuration-only kwargs."""
    dag = load_dag(DAG_ID)
    from airflow.sdk import Asset

    (asset,) = [a for a in dag.timetable.asset_condition.objects if isinstance(a, Asset)]
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow_provider_piriod.triggers.watcher.PiriodEventTrigger"
    assert kwargs["resource"] == "customers" and kwargs["filters"] == {}


@pytest.mark.skipif(not airflow_v3(), reason="AssetWatcher is Airflow 3")
def test_folded_events_give_the_ids_and_the_welcome_reads_those_customers(piriod_emulator):
    """The ids task folds every event; a run started by hand (no events) skips instead of reading nothing."""
    dag = load_dag(DAG_ID)
    ids = [c["id"] for c in piriod_emulator.customers()[:3]]
    events = {
        "asset": [
            SimpleNamespace(extra={"payload": event_payload("customers", ids[:2])}),
            SimpleNamespace(extra={"payload": event_payload("customers", ids[1:])}),
        ]
    }
    assert dag.get_task("new_customer_ids").python_callable(triggering_asset_events=events) == ids

    dag_run = run(dag)
    assert dag_run.state == "success"
    assert set(task_states(dag_run).values()) == {"skipped"}
    assert return_values(dag_run.run_id) == {}


@pytest.mark.skipif(airflow_v3(), reason="Airflow 2.11 only")
def test_on_airflow_2_the_file_imports_and_defines_no_dag():
    """No AssetWatcher before Airflow 3: the example stays importable and defines nothing."""
    with pytest.raises(AttributeError):
        load_dag(DAG_ID)


@pytest.mark.skipif(not airflow_v3(), reason="AssetWatcher is Airflow 3")
def test_the_payment_example_takes_webhook_and_backstop_events_on_the_receivers_asset(piriod_emulator):
    """Its asset is the URI the webhook receiver records on, watched by a slow PiriodEventTrigger; a payment
    announced by a webhook and by the backstop is read once."""
    from airflow.sdk import Asset

    from airflow_provider_piriod.events import webhook_extra

    dag = load_dag("example_piriod_on_payment")
    (asset,) = [a for a in dag.timetable.asset_condition.objects if isinstance(a, Asset)]
    assert asset.uri == "piriod://piriod_default/payments"
    (watcher,) = asset.watchers
    assert watcher.trigger.serialize()[1]["poll_interval"] == 900
    ids = [p["id"] for p in piriod_emulator.records("payments")[:2]]
    events = {
        "payments": [
            SimpleNamespace(extra=webhook_extra("payment.created", str(ids[0]), "payments")),
            SimpleNamespace(extra={"payload": event_payload("payments", [str(ids[0]), str(ids[1])])}),
        ]
    }
    assert dag.get_task("payment_ids").python_callable(triggering_asset_events=events) == [str(i) for i in ids]
