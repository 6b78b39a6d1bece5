"""Every typed resource over real HTTP: envelope, ids, relationships, statuses, money, dates and filters."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import requests

from airflow_provider_piriod.testing import PiriodEmulator
from tests.testing.test_emulator import api

RESOURCES = (
    "customers",
    "contacts",
    "invoices",
    "payments",
    "subscriptions",
    "creditnotes",
    "plans",
    "products",
    "payment-receipts",
)
PREFIXES = {
    "customers": "cus_",
    "contacts": "con_",
    "invoices": "inv_",
    "payments": "pay_",
    "subscriptions": "sub_",
    "plans": "pla_",
    "products": "pro_",
}
INTEGER_IDS = ("creditnotes", "payment-receipts")
BIG_INVOICE = "inv_17DigitTotal0000000000"
SHAPES = {
    "zulu": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"),
    "offset": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$"),
    "naive": re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"),
}
DAY = re.compile(r"^\d{4}-\d\d-\d\d$")


@pytest.fixture(scope="module")
def emulator():
    with PiriodEmulator(customers=300, seed=5) as running:
        yield running


@pytest.fixture(scope="module")
def data(emulator):
    """Every record of every resource, live and test mode, as the control API stores them."""
    return {name: {mode: emulator.records(name, test_mode=mode) for mode in (False, True)} for name in RESOURCES}


def exact(response: requests.Response):
    return json.loads(response.content, parse_float=Decimal)


def moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def everything(emulator, resource, test_mode=None, **params):
    """Walk every page of a listing, following the absolute ``next`` links."""
    headers = {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
    if test_mode:
        headers["x-piriod-test-mode"] = "true"
    found, url = [], f"{emulator.url}/{resource}/"
    query = dict(params, page_size=100)
    while url:
        response = requests.get(url, headers=headers, params=query, timeout=10)
        assert response.status_code == 200, response.text
        page = exact(response)
        found += page["results"]
        url, query = page["next"], None
    return found


def ids(records):
    return {r["id"] for r in records}


@pytest.mark.parametrize("resource", RESOURCES)
def test_every_resource_lists_with_the_envelope_and_retrieves_by_id(emulator, data, resource):
    records = data[resource][False]
    page = exact(api(emulator, f"/{resource}/", page_size=3))
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == len(records) > 3 and len(page["results"]) == 3
    assert page["next"].startswith(f"{emulator.url}/{resource}/?") and page["previous"] is None
    assert len(exact(api(emulator, f"/{resource}/"))["results"]) == min(20, len(records))
    assert len(exact(api(emulator, f"/{resource}/", page_size=500))["results"]) == min(100, len(records))
    first = page["results"][0]
    assert exact(api(emulator, f"/{resource}/{first['id']}/")) == first == emulator.record(resource, first["id"])
    assert ids(everything(emulator, resource)) == ids(records)


@pytest.mark.parametrize("resource", RESOURCES)
def test_ids_have_the_documented_form(data, resource):
    for record in data[resource][False] + data[resource][True]:
        if resource in INTEGER_IDS:
            assert type(record["id"]) is int
        else:
            assert record["id"].startswith(PREFIXES[resource]) and len(record["id"]) == len(PREFIXES[resource]) + 22


@pytest.mark.parametrize("resource", RESOURCES[1:])
def test_test_mode_objects_only_with_the_header_and_foreign_ones_never(emulator, data, resource):
    hidden = data[resource][True][0]["id"]
    assert api(emulator, f"/{resource}/{hidden}/").status_code == 404
    assert exact(api(emulator, f"/{resource}/{hidden}/", test_mode="true"))["test_mode"] is True
    assert ids(everything(emulator, resource, test_mode=True)) == ids(data[resource][True])
    info = emulator.info()
    theirs = exact(api(emulator, f"/{resource}/", token=info["other_token"], workspace=info["other_workspace"]))
    assert theirs["results"], f"the foreign workspace has {resource} too"
    assert api(emulator, f"/{resource}/{theirs['results'][0]['id']}/").status_code == 404


def test_relationships_point_at_existing_objects_of_the_same_mode(data):
    for mode in (False, True):
        by_id = {name: {r["id"]: r for r in data[name][mode]} for name in RESOURCES}
        for contact in by_id["contacts"].values():
            owner = by_id["customers"][contact["customer"]]
            assert contact["id"] in {c["id"] for c in owner["contacts"]}
        for plan in by_id["plans"].values():
            assert plan["product"] in by_id["products"]
        for product in by_id["products"].values():
            assert [p["id"] for p in product["plans"]] == [
                p["id"] for p in by_id["plans"].values() if p["product"] == product["id"]
            ]
        for subscription in by_id["subscriptions"].values():
            assert subscription["customer"] in by_id["customers"]
            assert subscription["lines"] and all(line["plan"] in by_id["plans"] for line in subscription["lines"])
        for invoice in by_id["invoices"].values():
            assert invoice["customer"] in by_id["customers"]
            if invoice["subscription"] is not None:
                assert by_id["subscriptions"][invoice["subscription"]]["customer"] == invoice["customer"]
            assert all(by_id["payments"][p]["invoice"] == invoice["id"] for p in invoice["payments"])
        for payment in by_id["payments"].values():
            invoice = by_id["invoices"][payment["invoice"]]
            assert payment["customer"] == invoice["customer"] and payment["subscription"] == invoice["subscription"]
            assert payment["id"] in invoice["payments"] and payment["currency"] == invoice["currency"]
            if payment["source"] is not None:
                assert payment["source"] in by_id["customers"][payment["customer"]]["sources"]
        for note in by_id["creditnotes"].values():
            assert note["invoice"] in by_id["invoices"]
        for receipt in by_id["payment-receipts"].values():
            payment = by_id["payments"][receipt["payment"]]
            assert payment["status"] == "succeeded" and receipt["customer"] == payment["customer"]
        for name in RESOURCES:
            assert all(r["test_mode"] is mode for r in by_id[name].values())


def test_documented_statuses_in_realistic_proportions(data):
    def statuses(name):
        return Counter(r["status"] for r in data[name][False] + data[name][True])

    invoices, payments, subscriptions = statuses("invoices"), statuses("payments"), statuses("subscriptions")
    assert set(invoices) == {"paid", "finalized", "draft", "uncollectible"}
    assert invoices["paid"] > invoices["finalized"] > invoices["draft"] > invoices["uncollectible"]
    assert invoices["paid"] + invoices["finalized"] > 0.7 * sum(invoices.values())
    assert {"succeeded", "failed", "processing", "requires_payment_method"} <= set(payments)
    assert set(payments) & {"cancelled", "canceled"}
    assert set(payments) <= {
        "succeeded",
        "failed",
        "processing",
        "requires_payment_method",
        "incomplete",
        "cancelled",
        "canceled",
    }
    assert payments.most_common(1)[0][0] == "succeeded" and payments["succeeded"] > 0.6 * sum(payments.values())
    assert set(subscriptions) == {"active", "needs_attention", "paused", "cancelled", "finalized"}
    assert subscriptions.most_common(1)[0][0] == "active"
    assert set(statuses("creditnotes")) <= {"draft", "finalized", "cancelled"} and statuses("creditnotes")["finalized"]
    assert set(statuses("plans")) == set(statuses("products")) == {"active", "archived"}
    assert set(statuses("payment-receipts")) <= {"draft", "finalized"}


def test_money_is_in_major_units_whole_for_clp_two_decimals_otherwise(emulator):
    invoices = everything(emulator, "invoices")
    for invoice in invoices:
        for name in ("amount", "subtotal", "tax", "total", "total_adjusted"):
            value = invoice[name]
            if invoice["currency"] == "CLP":
                assert type(value) is int, (invoice["id"], name, value)
            else:
                assert isinstance(value, Decimal) and value.as_tuple().exponent == -2, (invoice["id"], name, value)
        assert invoice["total"] == invoice["subtotal"] + invoice["tax"]
    assert {i["currency"] for i in invoices} >= {"CLP", "USD"}


def test_a_seventeen_digit_total_reaches_the_wire_exactly(emulator):
    response = api(emulator, f"/invoices/{BIG_INVOICE}/")
    assert b'"total": 123456789012345.67' in response.content
    assert exact(response)["total"] == Decimal("123456789012345.67")
    listed = api(emulator, "/invoices/", metadata__scenario="seventeen_digit_total")
    assert b'"total": 123456789012345.67' in listed.content and exact(listed)["count"] == 1
    assert emulator.record("invoices", BIG_INVOICE)["total"] == Decimal("123456789012345.67")


def test_dates_are_plain_days_and_timestamps_mix_the_three_documented_shapes(data):
    day_fields = {
        "invoices": ("date", "due_date", "period_start", "period_end"),
        "payments": ("date",),
        "subscriptions": ("date_start", "next_billing"),
        "creditnotes": ("date",),
    }
    for resource, fields in day_fields.items():
        for record in data[resource][False]:
            assert all(record[f] is None or DAY.match(record[f]) for f in fields), record
    for resource in RESOURCES[2:]:
        seen = Counter(next(s for s, rx in SHAPES.items() if rx.match(r["created"])) for r in data[resource][False])
        assert set(seen) == set(SHAPES), (resource, seen)
        for record in data[resource][False]:
            assert moment(record["updated"]) >= moment(record["created"])
    paid = [p["payment_date"] for p in data["payments"][False] if p["status"] == "succeeded"]
    assert {next(s for s, rx in SHAPES.items() if rx.match(text)) for text in paid} == set(SHAPES)


@pytest.mark.parametrize("bound", ["2025-03-01T00:00:00Z", "2025-02-28T21:00:00.000000-03:00", "2025-03-01 00:00:00"])
@pytest.mark.parametrize("resource", ["invoices", "payments", "subscriptions", "creditnotes"])
def test_created_range_compares_instants_whatever_the_shape(emulator, data, resource, bound):
    start, end = datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    expected = {r["id"] for r in data[resource][False] if moment(r["created"]) >= start}
    assert expected and expected != ids(data[resource][False])
    assert ids(everything(emulator, resource, created__gte=bound)) == expected
    between = {r["id"] for r in data[resource][False] if start <= moment(r["created"]) <= end}
    assert ids(everything(emulator, resource, created__gte=bound, created__lte="2025-12-31 23:59:59")) == between


def test_foreign_key_filters(emulator, data):
    invoices, payments = data["invoices"][False], data["payments"][False]
    customer = max(Counter(i["customer"] for i in invoices).items(), key=lambda kv: kv[1])[0]
    assert ids(everything(emulator, "invoices", customer=customer)) == {
        i["id"] for i in invoices if i["customer"] == customer
    }
    invoice = next(i for i in invoices if len(i["payments"]) > 1)
    assert ids(everything(emulator, "payments", invoice=invoice["id"])) == set(invoice["payments"])
    subscription = next(i["subscription"] for i in invoices if i["subscription"])
    assert ids(everything(emulator, "invoices", subscription=subscription)) == {
        i["id"] for i in invoices if i["subscription"] == subscription
    }
    assert ids(everything(emulator, "payments", customer=customer)) == {
        p["id"] for p in payments if p["customer"] == customer
    }
    product = data["products"][False][0]["id"]
    assert ids(everything(emulator, "plans", product=product)) == {
        p["id"] for p in data["plans"][False] if p["product"] == product
    }
    note = data["creditnotes"][False][0]
    assert note["id"] in ids(everything(emulator, "creditnotes", invoice=note["invoice"]))
    contact = data["contacts"][False][0]
    assert contact["id"] in ids(everything(emulator, "contacts", customer=contact["customer"]))
    plan = data["subscriptions"][False][0]["lines"][0]["plan"]
    assert ids(everything(emulator, "subscriptions", plan=plan)) == {
        s["id"] for s in data["subscriptions"][False] if any(line["plan"] == plan for line in s["lines"])
    }


def test_status_in_date_search_and_metadata_filters(emulator, data):
    invoices = data["invoices"][False]
    drafts = {i["id"] for i in invoices if i["status"] == "draft"}
    assert ids(everything(emulator, "invoices", status="draft")) == drafts
    assert ids(everything(emulator, "invoices", status__in="draft,uncollectible")) == {
        i["id"] for i in invoices if i["status"] in ("draft", "uncollectible")
    }
    assert ids(everything(emulator, "payments", status__in="cancelled,canceled")) == {
        p["id"] for p in data["payments"][False] if p["status"] in ("cancelled", "canceled")
    }
    assert ids(everything(emulator, "invoices", date__gte="2025-01-01", date__lte="2025-06-30")) == {
        i["id"] for i in invoices if "2025-01-01" <= i["date"] <= "2025-06-30"
    }
    assert ids(everything(emulator, "invoices", due_date__gte="2026-01-01")) == {
        i["id"] for i in invoices if i["due_date"] >= "2026-01-01"
    }
    assert ids(everything(emulator, "invoices", due_date__lte="2024-12-31")) == {
        i["id"] for i in invoices if i["due_date"] <= "2024-12-31"
    }
    assert ids(everything(emulator, "subscriptions", next_billing__gte="2026-07-01")) == {
        s["id"] for s in data["subscriptions"][False] if (s["next_billing"] or "") >= "2026-07-01"
    }
    assert ids(everything(emulator, "invoices", metadata__cost_center="CC-10")) == {
        i["id"] for i in invoices if i["metadata"].get("cost_center") == "CC-10"
    }
    assert ids(everything(emulator, "products", search="COBRANZA")) == {
        p["id"] for p in data["products"][False] if "cobranza" in p["name"].lower()
    }
    assert ids(everything(emulator, "creditnotes", search="descuento")) == {
        n["id"] for n in data["creditnotes"][False] if "descuento" in n["note"].lower()
    }
    assert ids(everything(emulator, "invoices", total__gte="100000000000000")) == {BIG_INVOICE}


def test_unknown_filters_are_ignored_and_bad_values_are_field_errors(emulator, data):
    assert exact(api(emulator, "/invoices/", no_such_filter="x", page_size=1))["count"] == len(data["invoices"][False])
    assert exact(api(emulator, "/creditnotes/", customer="cus_x", page_size=1))["count"] == len(
        data["creditnotes"][False]
    )  # credit notes have no customer field
    assert api(emulator, "/invoices/", date__gte="someday").json() == {"date__gte": ["Enter a valid date."]}
    assert api(emulator, "/payments/", created__lte="soon").json() == {"created__lte": ["Enter a valid date/time."]}
    assert api(emulator, "/invoices/", total__gte="lots").status_code == 400


@pytest.mark.parametrize("resource", ["invoices", "payments", "plans", "payment-receipts"])
def test_ordering_by_created_compares_instants_and_defaults_to_newest_first(emulator, resource):
    oldest_first = [moment(r["created"]) for r in everything(emulator, resource, ordering="created")]
    assert oldest_first == sorted(oldest_first) and len(oldest_first) > 1
    assert [moment(r["created"]) for r in everything(emulator, resource, ordering="-created")] == oldest_first[::-1]
    assert [moment(r["created"]) for r in everything(emulator, resource)] == oldest_first[::-1]


def test_ordering_by_money_and_date_fields(emulator):
    totals = [r["total"] for r in everything(emulator, "invoices", currency="USD", ordering="-total")]
    assert totals == sorted(totals, reverse=True) and totals[0] == Decimal("123456789012345.67")
    days = [r["due_date"] for r in everything(emulator, "invoices", ordering="due_date,-total")]
    assert days == sorted(days)


def test_integer_ids_retrieve_and_filter(emulator, data):
    note = data["creditnotes"][False][-1]
    assert exact(api(emulator, f"/creditnotes/{note['id']}/"))["id"] == note["id"]
    assert ids(everything(emulator, "creditnotes", id__in=f"{note['id']},999999")) == {note["id"]}
    receipt = data["payment-receipts"][False][0]
    assert emulator.record("payment-receipts", receipt["id"]) == receipt


def test_unknown_resource_is_a_drf_404_before_authentication(emulator):
    for path in ("/prices/", "/nonsense/", "/invoices-old/", "/prices/pri_1/"):
        response = requests.get(f"{emulator.url}{path}", timeout=10)
        assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    response = requests.get(f"{emulator.url}/invoices", allow_redirects=False, timeout=10)
    assert response.status_code == 301 and response.headers["Location"].endswith("/invoices/")
    assert requests.get(f"{emulator.url}/invoices/", timeout=10).status_code == 401


def test_counts_match_the_listings(emulator, data):
    counts = emulator.counts()
    for name in RESOURCES:
        assert counts[name] == {"live": len(data[name][False]), "test_mode": len(data[name][True])}
