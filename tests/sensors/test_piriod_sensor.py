"""PiriodSensor on any resource: parse-time checks, registry fail statuses, and one XCom value on every path."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.compat import AirflowFailException, TaskDeferred
from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.sensors.piriod import PiriodSensor
from airflow_provider_piriod.testing.billing_data import BIG_TOTAL_INVOICE_ID
from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger, PiriodTrigger

BIG_TOTAL = Decimal("123456789012345.67")


def sensor(**kwargs) -> PiriodSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 30)
    return PiriodSensor(task_id="wait", **kwargs)


def run_trigger(trigger: PiriodTrigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def as_api_json(record):
    return jsoncodec.loads(jsoncodec.dumps(record))


class _TaskInstanceOutsideAScheduler:
    def get_first_reschedule_date(self, context):
        return None


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resource": "invoice", "object_id": "inv_1"}, "resource must be one of the Piriod resources"),
        (
            {"resource": "invoices"},
            r"PiriodSensor needs exactly one of object_id or filters \(filters=\{\} means any invoice\)",
        ),
        (
            {"resource": "invoices", "object_id": "inv_1", "target_status": "payed"},
            "target_status must be one of draft, finalized, paid, uncollectible; got 'payed' "
            r"\(the statuses Piriod documents for invoices\)",
        ),
        (
            {"resource": "payments", "object_id": "pay_1", "target_status": "paid"},
            "target_status must be one of requires_payment_method, processing, succeeded, failed",
        ),
        (
            {"resource": "invoices", "object_id": "inv_1", "target_status": "paid", "fail_statuses": ["void"]},
            "fail_statuses must be a list drawn from draft, finalized, paid, uncollectible; got",
        ),
        (
            {"resource": "contacts", "object_id": "con_1", "target_status": "active"},
            "Piriod documents no statuses for contacts.*use match",
        ),
        (
            {"resource": "invoices", "object_id": "inv_1", "target_status": "paid", "fail_statuses": ["paid"]},
            "cannot also be in fail_statuses",
        ),
    ],
)
def test_arguments_are_refused_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(PiriodInputError, match=message):
        sensor(**kwargs)


@pytest.mark.parametrize(
    ("resource", "target_status", "fail_statuses"),
    [
        ("invoices", "paid", ["uncollectible"]),
        ("payments", "succeeded", ["failed", "cancelled", "canceled"]),
        ("subscriptions", "active", ["cancelled", "finalized"]),
        ("subscriptions", "cancelled", ["finalized"]),  # the status waited for is never a failure
        ("creditnotes", "finalized", ["cancelled"]),
        ("plans", "active", ["archived"]),
        ("products", "active", ["archived"]),
        ("invoices", None, []),
    ],
)
def test_fail_statuses_default_to_the_registrys_when_a_status_is_awaited(resource, target_status, fail_statuses):
    assert sensor(resource=resource, object_id="x_1", target_status=target_status).fail_statuses == fail_statuses


def test_fail_statuses_can_be_chosen_or_turned_off():
    assert sensor(
        resource="payments", object_id="pay_1", target_status="succeeded", fail_statuses=["failed"]
    ).fail_statuses == ["failed"]
    assert sensor(resource="invoices", object_id="inv_1", target_status="paid", fail_statuses=[]).fail_statuses == []


def test_templated_fields_and_no_io_at_parse(monkeypatch):
    assert set(PiriodSensor.template_fields) == {"object_id", "filters", "match", "piriod_conn_id"}
    monkeypatch.delenv("AIRFLOW_CONN_PIRIOD_DEFAULT", raising=False)
    assert "hook" not in sensor(resource="invoices", object_id="inv_1", piriod_conn_id="nowhere").__dict__


def test_a_templated_id_is_rendered_before_the_poke(piriod_emulator):
    waiting = sensor(resource="invoices", object_id="{{ params.invoice_id }}")
    waiting.render_template_fields({"params": {"invoice_id": BIG_TOTAL_INVOICE_ID}})
    assert waiting.poke({}).xcom_value["id"] == BIG_TOTAL_INVOICE_ID


# ---------------------------------------------------------------------- poke


def test_waits_until_an_invoice_is_paid(piriod_emulator):
    invoice = piriod_emulator.create("invoices", status="finalized")
    waiting = sensor(resource="invoices", object_id=invoice["id"], target_status="paid")
    assert waiting.poke({}).is_done is False
    piriod_emulator.update("invoices", invoice["id"], status="paid")
    result = waiting.poke({})
    assert result.is_done and result.xcom_value == as_api_json(piriod_emulator.record("invoices", invoice["id"]))


def test_an_uncollectible_invoice_fails_at_once_naming_the_invoice(piriod_emulator):
    invoice = piriod_emulator.create("invoices", status="uncollectible")
    with pytest.raises(
        AirflowFailException,
        match=f"Piriod invoice '{invoice['id']}' reached status 'uncollectible' while waiting for 'paid'",
    ):
        sensor(resource="invoices", object_id=invoice["id"], target_status="paid").poke({})


def test_a_missing_object_is_not_yet_and_a_blank_id_fails(piriod_emulator):
    assert sensor(resource="payments", object_id="pay_not_yet").poke({}).is_done is False
    with pytest.raises(AirflowFailException, match="object_id is empty or blank"):
        sensor(resource="payments", object_id=" ").poke({})


def test_waits_for_at_least_n_succeeded_payments_of_a_customer(piriod_emulator):
    customer = piriod_emulator.customers()[0]["id"]
    succeeded = [
        p for p in piriod_emulator.records("payments") if p["customer"] == customer and p["status"] == "succeeded"
    ]
    waiting = sensor(
        resource="payments", filters={"customer": customer}, target_status="succeeded", min_count=len(succeeded) + 2
    )
    assert waiting.poke({}).is_done is False
    invoice = next(i for i in piriod_emulator.records("invoices") if i["customer"] == customer)
    created = [piriod_emulator.create("payments", invoice=invoice["id"], status="succeeded") for _ in range(2)]
    piriod_emulator.create("payments", invoice=invoice["id"], status="failed")  # not one of them
    result = waiting.poke({})
    assert result.is_done
    assert sorted(p["id"] for p in result.xcom_value) == sorted(p["id"] for p in succeeded + created)


def test_filters_without_checks_count_in_one_request(piriod_emulator):
    waiting = sensor(resource="invoices", filters={"metadata__batch": "b9"}, min_count=1)
    assert waiting.poke({}).is_done is False
    assert [dict(r["params"])["page_size"] for r in piriod_emulator.requests()] == ["1"]


# ---------------------------------------------------------------------- deferral and the same XCom on every path


def test_deferrable_defers_to_a_piriod_trigger_on_the_resource(piriod_emulator):
    invoice = piriod_emulator.create("invoices", status="finalized")
    task = sensor(
        resource="invoices",
        object_id=invoice["id"],
        target_status="paid",
        deferrable=True,
        poke_interval=7,
        timeout=600,
    )
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    trigger = deferred.value.trigger
    assert type(trigger) is PiriodTrigger and not isinstance(trigger, PiriodCustomerTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_piriod.triggers.piriod.PiriodTrigger"
    assert kwargs["resource"] == "invoices" and kwargs["object_id"] == invoice["id"]
    assert kwargs["fail_statuses"] == ["uncollectible"] and kwargs["poke_interval"] == 7.0
    assert 590 < kwargs["deadline"] - time.time() <= 600
    json.dumps(kwargs)


def test_poke_reschedule_and_deferred_paths_push_the_same_exact_invoice(piriod_emulator):
    deferring = sensor(resource="invoices", object_id=BIG_TOTAL_INVOICE_ID, target_status="paid", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute({})
    piriod_emulator.update("invoices", BIG_TOTAL_INVOICE_ID, status="paid")
    event = run_trigger(deferred.value.trigger)
    assert event == json.loads(json.dumps(event))  # plain JSON, as the triggerer stores it
    from_trigger = deferring.execute_complete({}, json.loads(json.dumps(event)))
    from_poke = sensor(resource="invoices", object_id=BIG_TOTAL_INVOICE_ID, target_status="paid").execute({})
    assert from_trigger == from_poke == as_api_json(piriod_emulator.record("invoices", BIG_TOTAL_INVOICE_ID))
    assert type(from_trigger["total"]) is type(from_poke["total"]) is Decimal and from_trigger["total"] == BIG_TOTAL


@pytest.mark.airflow3  # 2.11's reschedule mode reads the task's reschedule history from the database
def test_reschedule_path_pushes_the_same_value_as_poke(piriod_emulator):
    piriod_emulator.update("invoices", BIG_TOTAL_INVOICE_ID, status="paid")
    from_poke = sensor(resource="invoices", object_id=BIG_TOTAL_INVOICE_ID, target_status="paid").execute({})
    from_reschedule = sensor(
        resource="invoices", object_id=BIG_TOTAL_INVOICE_ID, target_status="paid", mode="reschedule"
    ).execute({"ti": _TaskInstanceOutsideAScheduler()})
    assert from_reschedule == from_poke and from_poke["total"] == BIG_TOTAL


def test_filters_mode_defers_and_returns_the_matching_list(piriod_emulator):
    customer = piriod_emulator.customers()[1]["id"]
    invoice = next(i for i in piriod_emulator.records("invoices") if i["customer"] == customer)
    deferring = sensor(
        resource="payments", filters={"invoice": invoice["id"], "metadata__wave": "w1"}, min_count=2, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute({})
    made = [piriod_emulator.create("payments", invoice=invoice["id"], metadata={"wave": "w1"}) for _ in range(2)]
    result = deferring.execute_complete({}, run_trigger(deferred.value.trigger))
    assert sorted(p["id"] for p in result) == sorted(p["id"] for p in made)


def test_readme_wait_any_examples_build_valid_sensors():
    import re
    from pathlib import Path

    from airflow_provider_piriod.compat import DAG

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"<!-- readme-test: wait-any -->\n```python\n(.*?)```", readme, re.S)
    assert block, "README block 'wait-any' not found"
    namespace: dict = {}
    with DAG(dag_id="readme_wait_any", schedule=None):
        exec(compile(block.group(1), "README.md:wait-any", "exec"), namespace)
    paid, payments = namespace["paid"], namespace["three_payments"]
    assert paid.deferrable is True and paid.fail_statuses == ["uncollectible"] and paid.resource == "invoices"
    assert payments.min_count == 3 and payments.fail_statuses == ["failed", "cancelled", "canceled"]
