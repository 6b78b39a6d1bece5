"""PiriodCustomerTrigger: JSON round trip, and real waits against the emulator without blocking the loop."""

from __future__ import annotations

import asyncio
import importlib
import json
import time


from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger


def first_event(trigger: PiriodCustomerTrigger) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


def make(**kwargs) -> PiriodCustomerTrigger:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("deadline", time.time() + 20)
    return PiriodCustomerTrigger(**kwargs)


def test_serialize_is_json_and_rebuilds_the_same_trigger():
    trigger = PiriodCustomerTrigger(
        piriod_conn_id="billing",
        customer_id="cus_1",
        target_status="active",
        match={"country.id": "CL"},
        test_mode=True,
        poke_interval=15,
        deadline=1_900_000_000.5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_piriod.triggers.piriod.PiriodCustomerTrigger"
    assert kwargs == {
        "piriod_conn_id": "billing",
        "customer_id": "cus_1",
        "filters": None,
        "target_status": "active",
        "match": {"country.id": "CL"},
        "min_count": 1,
        "fail_statuses": ["archived"],
        "test_mode": True,
        "poke_interval": 15.0,
        "deadline": 1_900_000_000.5,
    }
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_waits_for_a_customer_that_becomes_active(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending")
    piriod_emulator.update_customer(signup["id"], status="active", after_seconds=0.5)
    event = first_event(make(customer_id=signup["id"], target_status="active"))
    assert event["status"] == "success"
    assert event["value"] == piriod_emulator.customer(signup["id"])
    assert event["value"]["status"] == "active"
    assert len(piriod_emulator.requests()) >= 3  # it polled while the customer was pending


def test_waits_for_a_customer_that_does_not_exist_yet(piriod_emulator):
    existing = piriod_emulator.customers()[0]
    piriod_emulator.add_fault("status", status=404, path=f"/customers/{existing['id']}/", times=2)
    event = first_event(make(customer_id=existing["id"]))
    assert event["status"] == "success" and event["value"] == existing


def test_deadline_gives_a_timeout_event(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending")
    started = time.monotonic()
    event = first_event(
        make(customer_id=signup["id"], target_status="active", poke_interval=0.2, deadline=time.time() + 0.7)
    )
    assert event["status"] == "timeout" and "status is 'pending'" in event["message"]
    # the customer stays pending for good: without the deadline the wait would never end; 10 s is far beyond
    # the 0.7 s deadline plus one poke on any machine, and the wait cannot end before the deadline
    assert 0.6 < time.monotonic() - started < 10


def test_fail_status_gives_a_failed_event(piriod_emulator):
    signup = piriod_emulator.create_customer(status="pending")
    piriod_emulator.update_customer(signup["id"], status="archived", after_requests=1)
    event = first_event(make(customer_id=signup["id"], target_status="active"))
    assert event["status"] == "failed" and "reached status 'archived'" in event["message"]


def test_auth_errors_end_the_wait_with_an_error_event(piriod_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(piriod_emulator.connection, password="wrong")))
    event = first_event(make(customer_id="cus_1"))
    assert event["status"] == "error" and event["error"] == "PiriodAuthError" and "401" in event["message"]
    assert len(piriod_emulator.requests()) == 1


def test_transient_failures_are_retried_with_the_hooks_rules(piriod_emulator, fast_retries):
    record = piriod_emulator.customers()[0]
    piriod_emulator.add_fault("status", status=503, times=2)
    piriod_emulator.add_fault("drop", nth=3)
    event = first_event(make(customer_id=record["id"]))
    assert event["status"] == "success" and event["value"] == record
    assert [e["fault"] for e in piriod_emulator.requests()] == ["status", "status", "drop", None]


def test_transient_failures_beyond_retries_count_as_not_yet(piriod_emulator, fast_retries, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(piriod_emulator.connection, extra={"max_retries": 0}))
    )
    record = piriod_emulator.customers()[0]
    piriod_emulator.add_fault("status", status=500, times=3)
    event = first_event(make(customer_id=record["id"]))
    assert event["status"] == "success"
    assert [e["status"] for e in piriod_emulator.requests()] == [500, 500, 500, 200]


def test_filters_mode_waits_for_min_count_matching_customers(piriod_emulator):
    batch = [piriod_emulator.create_customer(status="pending", metadata={"batch": "b7"}) for _ in range(3)]
    for customer in batch[:2]:
        piriod_emulator.update_customer(customer["id"], status="active", after_seconds=0.4)
    event = first_event(make(filters={"metadata__batch": "b7"}, target_status="active", min_count=2))
    assert event["status"] == "success"
    assert sorted(c["id"] for c in event["value"]) == sorted(c["id"] for c in batch[:2])


def test_the_event_loop_stays_free_while_waiting(piriod_emulator):
    """No blocking call in run(): a ticker on the same loop keeps ticking while requests stall for 2 s each."""
    piriod_emulator.set_latency(2000)
    signup = piriod_emulator.create_customer(status="pending")
    piriod_emulator.update_customer(signup["id"], status="active", after_requests=2)

    async def scenario():
        gaps, last, stop = [], time.monotonic(), asyncio.Event()

        async def ticker():
            nonlocal last
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        async for event in make(customer_id=signup["id"], target_status="active").run():
            stop.set()
            await tick
            return event.payload, max(gaps)

    event, worst_gap = asyncio.run(scenario())
    assert event["status"] == "success"
    assert len(piriod_emulator.requests()) >= 2  # it waited through a pending answer and an active one
    # a blocking client would freeze the ticker for each whole 2 s request; a loaded machine delays a 10 ms
    # tick by far less than a quarter of that
    assert worst_gap < 0.5
