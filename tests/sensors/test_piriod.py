"""PiriodCustomerSensor: poke semantics, deferral, and the same XCom value on every path."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_piriod.compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor
from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger


def sensor(**kwargs) -> PiriodCustomerSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 30)
    return PiriodCustomerSensor(task_id="wait", **kwargs)


def run_trigger(trigger: PiriodCustomerTrigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


class _TaskInstanceOutsideAScheduler:
    """Reschedule mode asks the task instance when it first ran; outside a deployment there is none."""

    def get_first_reschedule_date(self, context):
        return None


# ---------------------------------------------------------------------- construction


def test_arguments_are_checked_at_construction():
    with pytest.raises(PiriodInputError, match="exactly one of customer_id or filters"):
        sensor()
    with pytest.raises(PiriodInputError, match="target_status must be one of"):
        sensor(customer_id="cus_1", target_status="enabled")


def test_deferrable_follows_airflows_default(monkeypatch):
    assert sensor(customer_id="cus_1").deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    assert sensor(customer_id="cus_1").deferrable is True
    assert sensor(customer_id="cus_1", deferrable=False).deferrable is False


def test_templated_fields():
    assert set(PiriodCustomerSensor.template_fields) == {"customer_id", "filters", "match", "piriod_conn_id"}


# ---------------------------------------------------------------------- poke


def test_missing_customer_is_not_yet(piriod_emulator):
    assert sensor(customer_id="cus_not_created_yet").poke({}).is_done is False


def test_status_and_match(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending", country={"id": "CL", "name": "Chile"})
    waiting = sensor(customer_id=signup["id"], target_status="active")
    assert waiting.poke({}).is_done is False
    piriod_emulator.update_customer(signup["id"], status="active")
    result = waiting.poke({})
    assert result.is_done and result.xcom_value == piriod_emulator.customer(signup["id"])
    assert sensor(customer_id=signup["id"], match={"country.id": "MX"}).poke({}).is_done is False
    assert sensor(customer_id=signup["id"], match={"country.id": "CL"}).poke({}).is_done is True


def test_reaching_a_fail_status_fails_fast(piriod_emulator):
    signup = piriod_emulator.create_customer(status="archived")
    with pytest.raises(AirflowFailException, match="reached status 'archived' while waiting for 'active'"):
        sensor(customer_id=signup["id"], target_status="active").poke({})


def test_auth_errors_fail_at_once_with_a_clear_message(piriod_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(piriod_emulator.connection, password="wrong")))
    with pytest.raises(AirflowFailException, match="401 Unauthorized: Invalid token"):
        sensor(customer_id="cus_1").poke({})
    assert len(piriod_emulator.requests()) == 1


def test_transient_errors_are_retried_and_never_count_as_done(piriod_emulator, fast_retries, monkeypatch):
    record = piriod_emulator.customers()[0]
    piriod_emulator.add_fault("status", status=503, times=2)
    assert sensor(customer_id=record["id"]).poke({}).xcom_value == record  # retried inside the poke
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(piriod_emulator.connection, extra={"max_retries": 0}))
    )
    piriod_emulator.add_fault("status", status=502)
    assert sensor(customer_id=record["id"]).poke({}).is_done is False


def test_filters_count_in_one_request_then_return_the_matches(piriod_emulator):
    waiting = sensor(filters={"metadata__campaign": "spring"}, min_count=2)
    assert waiting.poke({}).is_done is False
    assert len(piriod_emulator.requests()) == 1 and dict(piriod_emulator.requests()[0]["params"])["page_size"] == "1"
    created = [piriod_emulator.create_customer(metadata={"campaign": "spring"}) for _ in range(2)]
    result = waiting.poke({})
    assert result.is_done
    assert sorted(c["id"] for c in result.xcom_value) == sorted(c["id"] for c in created)


# ---------------------------------------------------------------------- deferral


def test_deferrable_checks_first_and_does_not_defer_when_already_satisfied(piriod_emulator):
    record = piriod_emulator.customers()[0]
    assert sensor(customer_id=record["id"], deferrable=True).execute({}) == record


def test_deferrable_defers_with_the_right_trigger(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending")
    task = sensor(customer_id=signup["id"], target_status="active", deferrable=True, poke_interval=7, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, PiriodCustomerTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["customer_id"] == signup["id"] and kwargs["target_status"] == "active"
    assert kwargs["poke_interval"] == 7.0 and kwargs["fail_statuses"] == ["archived"]
    assert 590 < kwargs["deadline"] - __import__("time").time() <= 600


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "failed", "message": "reached status 'archived'"}, AirflowFailException),
        (
            {"status": "error", "message": "Piriod GET /customers/x/ returned 401", "error": "PiriodAuthError"},
            AirflowFailException,
        ),
        ({"status": "timeout", "message": "Gave up waiting"}, AirflowSensorTimeout),
    ],
)
def test_execute_complete_turns_events_into_clear_failures(event, error):
    with pytest.raises(error, match=event["message"]):
        sensor(customer_id="cus_1", deferrable=True).execute_complete({}, event)


def test_soft_fail_skips_on_timeout():
    with pytest.raises(AirflowSkipException):
        sensor(customer_id="cus_1", soft_fail=True).execute_complete({}, {"status": "timeout", "message": "late"})


def test_poke_and_deferred_paths_push_the_same_value(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending")
    deferring = sensor(customer_id=signup["id"], target_status="active", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute({})
    piriod_emulator.update_customer(signup["id"], status="active")
    from_trigger = deferring.execute_complete({}, run_trigger(deferred.value.trigger))
    from_poke = sensor(customer_id=signup["id"], target_status="active", mode="poke").execute({})
    assert from_trigger == from_poke == piriod_emulator.customer(signup["id"])


@pytest.mark.airflow3  # 2.11's reschedule mode reads the task's reschedule history from the database
def test_reschedule_path_pushes_the_same_value_as_poke(piriod_emulator):
    signup = piriod_emulator.create_customer(status="active")
    from_poke = sensor(customer_id=signup["id"], target_status="active", mode="poke").execute({})
    from_reschedule = sensor(customer_id=signup["id"], target_status="active", mode="reschedule").execute(
        {"ti": _TaskInstanceOutsideAScheduler()}
    )
    assert from_reschedule == from_poke == piriod_emulator.customer(signup["id"])


@pytest.mark.airflow3
def test_reschedule_mode_gives_the_slot_back_while_waiting(piriod_emulator):
    from airflow.sdk.exceptions import AirflowRescheduleException

    signup = piriod_emulator.create_customer(status="pending")
    with pytest.raises(AirflowRescheduleException):
        sensor(customer_id=signup["id"], target_status="active", mode="reschedule").execute(
            {"ti": _TaskInstanceOutsideAScheduler()}
        )
