"""PiriodHook and PiriodAsyncHook on every typed resource, over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from decimal import Decimal

import pytest

from airflow_provider_piriod import jsoncodec, models
from airflow_provider_piriod.exceptions import PiriodNotFoundError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook
from airflow_provider_piriod.resources import RESOURCES

TYPED = ["customers", "contacts", "invoices", "payments", "subscriptions", "creditnotes", "plans", "products"]
BIG_TOTAL_INVOICE = "inv_17DigitTotal0000000000"


def as_sent(record):
    """A record as it reads back from the wire (money of up to 15 digits as float, the rest exact)."""
    return jsoncodec.loads(jsoncodec.dumps(record))


@pytest.mark.parametrize("resource", [*TYPED, "payment-receipts"])
def test_get_object_returns_the_typed_model_and_the_json_piriod_sent(hook, piriod_emulator, resource):
    record = piriod_emulator.records(resource)[0]
    got = hook.get_object(resource, record["id"])
    assert type(got) is RESOURCES[resource].model
    assert got.to_json() == as_sent(record)
    assert piriod_emulator.requests()[-1]["path"] == f"/{resource}/{record['id']}/"


@pytest.mark.parametrize("resource", TYPED)
def test_every_object_of_every_resource_fits_its_model_and_lists_match_counts(hook, piriod_emulator, resource):
    listed = hook.list_objects(resource, page_size=37)
    assert {str(o.id) for o in listed} == {str(r["id"]) for r in piriod_emulator.records(resource)}
    assert hook.count_objects(resource) == len(listed)


def test_integer_ids_are_accepted_as_numbers_or_text(hook, piriod_emulator):
    note = piriod_emulator.records("creditnotes")[0]
    assert isinstance(note["id"], int)
    assert hook.get_object("creditnotes", note["id"]).id == note["id"]
    assert hook.get_object("creditnotes", str(note["id"])).to_json() == as_sent(note)


def test_get_objects_keeps_input_order_repeats_and_skips_missing_when_asked(hook, piriod_emulator):
    ids = [p["id"] for p in piriod_emulator.records("payments")[:6]]
    wanted = [ids[3], ids[0], ids[3], ids[5]]
    assert [p.id for p in hook.get_objects("payments", wanted, max_workers=4)] == wanted
    assert len(piriod_emulator.requests()) == 3  # a repeated id is fetched once
    got = hook.get_objects("payments", [ids[1], "pay_missing", ids[2]], ignore_missing=True)
    assert [p.id for p in got] == [ids[1], ids[2]]
    with pytest.raises(PiriodNotFoundError):
        hook.get_objects("payments", [ids[1], "pay_missing"])


def test_invoices_of_a_customer_by_status(hook, piriod_emulator):
    customer = piriod_emulator.records("invoices")[0]["customer"]
    wanted = {
        i["id"]
        for i in piriod_emulator.records("invoices")
        if i["customer"] == customer and i["status"] in ("paid", "finalized")
    }
    got = hook.list_objects("invoices", {"customer": customer, "status__in": ["paid", "finalized"]})
    assert {i.id for i in got} == wanted and wanted
    assert all(isinstance(i, models.Invoice) and i.customer == customer for i in got)


def test_date_range_filters_compare_dates(hook, piriod_emulator):
    wanted = {i["id"] for i in piriod_emulator.records("invoices") if "2026-01-01" <= i["due_date"] <= "2026-03-31"}
    got = hook.list_objects("invoices", {"due_date__gte": date(2026, 1, 1), "due_date__lte": "2026-03-31"})
    assert {i.id for i in got} == wanted and wanted


def test_parallel_pages_give_the_same_objects_in_the_same_order(hook):
    sequential = [p["id"] for p in hook.iter_object_json("payments", page_size=10)]
    parallel = [p["id"] for p in hook.iter_object_json("payments", page_size=10, max_workers=6)]
    assert parallel == sequential and len(sequential) == len(set(sequential)) > 100


def test_a_17_digit_total_is_exact_through_the_model_and_back(hook, piriod_emulator):
    invoice = hook.get_object("invoices", BIG_TOTAL_INVOICE)
    assert invoice.total == Decimal("123456789012345.67")
    assert invoice.to_json()["total"] == Decimal("123456789012345.67")
    assert '"total":123456789012345.67' in jsoncodec.dumps(invoice.to_json())
    listed = next(hook.iter_object_json("invoices", {"metadata__scenario": "seventeen_digit_total"}))
    assert jsoncodec.dumps_line(listed) == jsoncodec.dumps_line(invoice.to_json())
    assert json.loads(jsoncodec.dumps_line(listed), parse_float=Decimal)["total"] == Decimal("123456789012345.67")


def test_every_documented_timestamp_shape_is_read(hook, piriod_emulator):
    shapes = {"Z": "2023-11-07T05:31:56Z", "offset": "2020-07-01T20:36:04.301041-04:00", "space": "2020-05-12 15:42:09"}
    for shape, text in shapes.items():
        created = piriod_emulator.create("payments", {"created": text, "payment_date": text})
        payment = hook.get_object("payments", created["id"])
        assert isinstance(payment.created, datetime) and isinstance(payment.payment_date, datetime), shape
        assert payment.to_json()["created"] == text
    assert payment.created == datetime(2020, 5, 12, 15, 42, 9)


def test_created_gte_finds_objects_created_after_a_moment_in_any_shape(hook, piriod_emulator):
    before = {s["id"] for s in piriod_emulator.records("subscriptions")}
    piriod_emulator.create("subscriptions", {"created": "2099-01-02 03:04:05"})
    newer = hook.list_objects("subscriptions", {"created__gte": "2099-01-01T00:00:00Z", "ordering": "created"})
    assert len(newer) == 1 and newer[0].id not in before


def test_the_async_hook_reads_any_resource(piriod_emulator):
    plan = piriod_emulator.records("plans")[0]

    async def scenario():
        async with PiriodAsyncHook() as hook:
            one = await hook.get_object_json("plans", plan["id"])
            count = await hook.count_objects("plans", {"product": plan["product"]})
            listed = [p async for p in hook.iter_object_json("plans", {"product": plan["product"]}, page_size=2)]
            return one, count, listed

    one, count, listed = asyncio.run(scenario())
    assert one == as_sent(plan)
    assert count == len(listed) == sum(p["product"] == plan["product"] for p in piriod_emulator.records("plans"))
