"""PiriodTrigger on any resource: JSON round trip, exact money in events, and real waits against the emulator."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from decimal import Decimal

import pytest

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.operators.xcom import event_value
from airflow_provider_piriod.testing.billing_data import BIG_TOTAL_INVOICE_ID
from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger, PiriodTrigger


def first_event(trigger: PiriodTrigger) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


def make(**kwargs) -> PiriodTrigger:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("deadline", time.time() + 20)
    return PiriodTrigger(**kwargs)


def rebuild(classpath: str, kwargs: dict):
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


def test_serialize_is_json_and_rebuilds_the_same_trigger():
    trigger = PiriodTrigger(
        resource="invoices",
        piriod_conn_id="billing",
        object_id="inv_1",
        target_status="paid",
        match={"currency": "USD"},
        test_mode=True,
        poke_interval=15,
        deadline=1_900_000_000.5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_piriod.triggers.piriod.PiriodTrigger"
    assert kwargs == {
        "resource": "invoices",
        "piriod_conn_id": "billing",
        "object_id": "inv_1",
        "filters": None,
        "target_status": "paid",
        "match": {"currency": "USD"},
        "min_count": 1,
        "fail_statuses": ["uncollectible"],
        "test_mode": True,
        "poke_interval": 15.0,
        "deadline": 1_900_000_000.5,
    }
    assert rebuild(classpath, kwargs).serialize() == (classpath, kwargs)


def test_a_customer_trigger_stored_by_an_earlier_version_still_runs(piriod_emulator):
    """The kwargs PiriodCustomerTrigger has always serialized rebuild it (as the triggerer does after an upgrade)."""
    record = piriod_emulator.customers()[0]
    stored = {
        "piriod_conn_id": "piriod_default",
        "customer_id": record["id"],
        "filters": None,
        "target_status": None,
        "match": {},
        "min_count": 1,
        "fail_statuses": [],
        "test_mode": None,
        "poke_interval": 0.1,
        "deadline": time.time() + 20,
    }
    trigger = rebuild("airflow_provider_piriod.triggers.piriod.PiriodCustomerTrigger", stored)
    assert isinstance(trigger, PiriodCustomerTrigger) and trigger.serialize()[1] == stored
    assert first_event(trigger) == {
        "status": "success",
        "value": record,
        "message": f"Piriod customer {record['id']!r} matches",
    }


def test_unknown_resources_and_statuses_are_refused():
    with pytest.raises(PiriodInputError, match="resource must be one of"):
        make(resource="invoice", object_id="inv_1")
    with pytest.raises(PiriodInputError, match="target_status must be one of draft, finalized, paid, uncollectible"):
        make(resource="invoices", object_id="inv_1", target_status="active")


def test_waits_for_an_invoice_to_be_paid_and_sends_every_digit_as_json_text(piriod_emulator):
    piriod_emulator.update("invoices", BIG_TOTAL_INVOICE_ID, status="paid", after_seconds=0.5)
    event = first_event(make(resource="invoices", object_id=BIG_TOTAL_INVOICE_ID, target_status="paid"))
    assert event["status"] == "success" and "value" not in event
    assert json.loads(json.dumps(event)) == event  # plain JSON all through
    assert '"total":123456789012345.67' in event["value_json"]
    value = event_value(event)
    paid = piriod_emulator.record("invoices", BIG_TOTAL_INVOICE_ID)
    assert value == jsoncodec.loads(jsoncodec.dumps(paid)) and value["total"] == Decimal("123456789012345.67")
    assert len(piriod_emulator.requests()) >= 3  # it polled while the invoice was finalized


def test_a_fail_status_of_the_resource_gives_a_failed_event(piriod_emulator):
    payment = piriod_emulator.create("payments", status="processing")
    piriod_emulator.update("payments", payment["id"], status="canceled", after_requests=1)
    event = first_event(make(resource="payments", object_id=payment["id"], target_status="succeeded"))
    assert event["status"] == "failed"
    reached = f"Piriod payment '{payment['id']}' reached status 'canceled' while waiting for 'succeeded'"
    assert reached in event["message"]


def test_integer_ids_are_waited_for(piriod_emulator):
    note = piriod_emulator.create("creditnotes", status="draft")
    assert isinstance(note["id"], int)
    piriod_emulator.update("creditnotes", note["id"], status="finalized", after_requests=1)
    event = first_event(make(resource="creditnotes", object_id=note["id"], target_status="finalized"))
    assert event["status"] == "success" and event_value(event)["id"] == note["id"]


def test_filters_mode_waits_for_min_count_matching_subscriptions(piriod_emulator):
    customer = piriod_emulator.customers()[2]["id"]
    batch = [
        piriod_emulator.create("subscriptions", customer=customer, status="active", metadata={"wave": "s4"})
        for _ in range(3)
    ]
    for subscription in batch[:2]:
        piriod_emulator.update("subscriptions", subscription["id"], status="needs_attention", after_seconds=0.4)
    event = first_event(
        make(resource="subscriptions", filters={"metadata__wave": "s4"}, target_status="needs_attention", min_count=2)
    )
    assert event["status"] == "success"
    assert sorted(s["id"] for s in event_value(event)) == sorted(s["id"] for s in batch[:2])


def test_the_deadline_gives_a_timeout_event_naming_the_resource(piriod_emulator):
    invoice = piriod_emulator.create("invoices", status="finalized")
    event = first_event(
        make(
            resource="invoices",
            object_id=invoice["id"],
            target_status="paid",
            poke_interval=0.2,
            deadline=time.time() + 0.5,
        )
    )
    assert event["status"] == "timeout"
    assert f"Piriod invoice '{invoice['id']}' exists but its status is 'finalized'" in event["message"]
