"""Creating and changing any resource mid-run, and faults, latency and the rate limit on every resource path."""

from __future__ import annotations

import http.client
import time
from decimal import Decimal

import pytest
import requests

from airflow_provider_piriod.testing import PiriodEmulator
from airflow_provider_piriod.testing.cli import parse_args
from tests.testing.test_emulator import api
from tests.testing.test_resources import exact, moment


def test_create_an_invoice_now_with_an_exact_total_for_a_chosen_customer(piriod_emulator):
    customer = piriod_emulator.customers()[0]
    created = piriod_emulator.create(
        "invoices", {"customer": customer["id"], "total": Decimal("98765432109876.54")}, status="draft"
    )
    assert created["id"].startswith("inv_") and created["customer"] == customer["id"]
    assert created["status"] == "draft" and created["total"] == Decimal("98765432109876.54")
    response = api(piriod_emulator, f"/invoices/{created['id']}/")
    assert b'"total": 98765432109876.54' in response.content
    newest = exact(api(piriod_emulator, "/invoices/", page_size=1))["results"][0]
    assert newest["id"] == created["id"]  # created now, so first in the default newest-first order


def test_created_objects_attach_to_existing_parents(piriod_emulator):
    invoice = piriod_emulator.create("invoices")
    assert invoice["status"] == "finalized"
    assert invoice["customer"] in {c["id"] for c in piriod_emulator.customers()}
    payment = piriod_emulator.create("payments", invoice=invoice["id"])
    assert payment["status"] == "succeeded" and payment["customer"] == invoice["customer"]
    assert payment["amount"] == invoice["total"] and payment["payment_date"]
    assert payment["id"] in piriod_emulator.record("invoices", invoice["id"])["payments"]
    note = piriod_emulator.create("creditnotes", invoice=invoice["id"])
    assert type(note["id"]) is int and note["invoice"] == invoice["id"]
    receipt = piriod_emulator.create("payment-receipts", payment=payment["id"])
    assert type(receipt["id"]) is int and receipt["payment"] == payment["id"]
    subscription = piriod_emulator.create("subscriptions", customer=invoice["customer"])
    plans = {p["id"] for p in piriod_emulator.records("plans")}
    assert subscription["status"] == "active" and {line["plan"] for line in subscription["lines"]} <= plans
    contact = piriod_emulator.create("contacts", customer=invoice["customer"], name="Ana Pérez")
    assert contact["id"].startswith("con_") and contact["name"] == "Ana Pérez"
    assert contact["id"] in {
        c["id"] for c in exact(api(piriod_emulator, "/contacts/", customer=invoice["customer"]))["results"]
    }


def test_a_new_plan_shows_inside_its_product(piriod_emulator):
    product = piriod_emulator.create("products", name="Firma Electrónica")
    assert product["plans"] == [] and product["status"] == "active"
    plan = piriod_emulator.create("plans", product=product["id"], currency="USD", amount=Decimal("12.50"))
    shown = exact(api(piriod_emulator, f"/products/{product['id']}/"))
    assert [p["id"] for p in shown["plans"]] == [plan["id"]] and shown["plans"][0]["amount"] == Decimal("12.50")
    piriod_emulator.update("plans", plan["id"], status="archived")
    assert exact(api(piriod_emulator, f"/products/{product['id']}/"))["plans"][0]["status"] == "archived"


def test_test_mode_objects_are_created_apart(piriod_emulator):
    invoice = piriod_emulator.create("invoices", test_mode=True)
    assert api(piriod_emulator, f"/invoices/{invoice['id']}/").status_code == 404
    assert exact(api(piriod_emulator, f"/invoices/{invoice['id']}/", test_mode="true"))["test_mode"] is True
    test_customers = {c["id"] for c in piriod_emulator.customers(test_mode=True)}
    assert invoice["customer"] in test_customers


def test_status_changes_now_after_requests_and_after_seconds(piriod_emulator):
    invoice = next(i for i in piriod_emulator.records("invoices") if i["status"] == "finalized")
    path = f"/invoices/{invoice['id']}/"
    piriod_emulator.update("invoices", invoice["id"], status="paid", after_requests=2)
    assert api(piriod_emulator, path).json()["status"] == "finalized"
    assert api(piriod_emulator, path).json()["status"] == "paid"
    piriod_emulator.update("invoices", invoice["id"], {"status": "uncollectible"}, after_seconds=0.3)
    assert api(piriod_emulator, path).json()["status"] == "paid"
    time.sleep(0.35)
    changed = exact(api(piriod_emulator, path))
    assert changed["status"] == "uncollectible"
    assert changed["updated"] != invoice["updated"] and changed["total"] == invoice["total"]


def test_update_keeps_the_records_own_timestamp_shape(piriod_emulator):
    payments = piriod_emulator.records("payments")[:3]
    for payment in payments:
        updated = piriod_emulator.update("payments", payment["id"], status="failed")["updated"]
        assert len(updated) == len(payment["updated"]) and updated[10] == payment["updated"][10]


def test_scheduled_creation_answers_with_the_future_id(piriod_emulator):
    scheduled = piriod_emulator.create("payments", after_requests=2)
    assert scheduled["scheduled"] is True and scheduled["id"].startswith("pay_")
    assert api(piriod_emulator, f"/payments/{scheduled['id']}/").status_code == 404
    assert api(piriod_emulator, f"/payments/{scheduled['id']}/").status_code == 200
    note = piriod_emulator.create("creditnotes", after_seconds=0.2, status="draft")
    assert type(note["id"]) is int
    time.sleep(0.25)
    assert exact(api(piriod_emulator, f"/creditnotes/{note['id']}/"))["status"] == "draft"


def test_new_objects_appear_to_a_created_gte_poll(piriod_emulator):
    """What an event trigger does: poll ``created__gte`` ordered by ``created`` and see only what is new."""
    since = exact(api(piriod_emulator, "/payments/", page_size=1))["results"][0]["created"]
    before = {p["id"] for p in exact(api(piriod_emulator, "/payments/", created__gte=since, page_size=100))["results"]}
    made = [piriod_emulator.create("payments")["id"] for _ in range(3)]
    page = exact(api(piriod_emulator, "/payments/", created__gte=since, ordering="created", page_size=100))
    assert {p["id"] for p in page["results"] if p["id"] not in before} == set(made)
    instants = [moment(p["created"]) for p in page["results"]]
    assert instants == sorted(instants)  # whole-second shapes may tie; ties are ordered by id


def test_control_errors_name_the_problem(piriod_emulator):
    with pytest.raises(RuntimeError, match="no invoice 'inv_missing'"):
        piriod_emulator.update("invoices", "inv_missing", status="paid")
    with pytest.raises(RuntimeError, match="no credit note '424242'"):
        piriod_emulator.record("creditnotes", 424242)
    response = requests.post(f"{piriod_emulator.url}/__emulator__/invoices", data=b"[1, 2]", timeout=10)
    assert response.status_code == 400
    assert requests.post(f"{piriod_emulator.url}/__emulator__/prices", json={}, timeout=10).status_code == 404


def _raw_get(emulator, path):
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request(
        "GET", path, headers={"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
    )
    return conn, conn.getresponse()


@pytest.fixture(scope="module")
def faulty():
    with PiriodEmulator(customers=60, seed=9) as emulator:
        yield emulator


@pytest.fixture
def subscriptions_only(faulty):
    """Faults that hit only /subscriptions/ paths; customers keep answering normally."""
    faulty.clear_faults()
    yield faulty
    faulty.clear_faults()


@pytest.mark.parametrize(
    "kind",
    [
        "status",
        "truncated_json",
        "invalid_json",
        "non_object",
        "missing_results",
        "next_host",
        "next_scheme",
        "next_loop",
        "redirect",
    ],
)
def test_every_answer_fault_works_on_a_non_customer_path(subscriptions_only, kind):
    emulator = subscriptions_only
    emulator.add_fault(kind, path="/subscriptions/*")
    assert api(emulator, "/customers/", page_size=5).status_code == 200  # not this path
    response = api(emulator, "/subscriptions/", page_size=5, allow_redirects=False)
    if kind == "status":
        assert response.status_code == 503 and response.text.startswith("<html>")
    elif kind == "truncated_json":
        assert response.text.startswith('{"count"')
        with pytest.raises(ValueError):
            response.json()
    elif kind == "invalid_json":
        assert response.text.startswith("<html>")
    elif kind == "non_object":
        assert response.json() == ["not", "an", "object"]
    elif kind == "missing_results":
        assert "results" not in response.json() and response.json()["count"] > 5
    elif kind == "next_host":
        assert response.json()["next"].startswith("http://elsewhere.invalid/subscriptions/?")
    elif kind == "next_scheme":
        assert response.json()["next"].startswith(emulator.url.replace("http", "https") + "/subscriptions/?")
    elif kind == "next_loop":
        assert response.json()["next"] == f"{emulator.url}/subscriptions/?page_size=5"
    else:
        assert response.status_code == 302
        assert response.headers["Location"] == "http://elsewhere.invalid/subscriptions/?page_size=5"
    assert api(emulator, "/subscriptions/", page_size=5).status_code == 200  # times=1


def test_drop_and_slow_body_on_a_single_payment(faulty):
    faulty.clear_faults()
    payment = faulty.records("payments")[0]["id"]
    faulty.add_fault("drop", path=f"/payments/{payment}/")
    conn, response = _raw_get(faulty, f"/payments/{payment}/")
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    faulty.add_fault("slow_body", path="/payments/*", chunk_delay=0.05, seconds=0.5)
    conn, response = _raw_get(faulty, "/payments/")
    started = time.monotonic()
    assert len(response.read(3)) == 3 and time.monotonic() - started >= 0.08
    conn.close()


def test_a_seventeen_digit_total_survives_a_rewritten_page(faulty):
    faulty.clear_faults()
    faulty.add_fault("next_host", path="/invoices/")
    response = api(faulty, "/invoices/", metadata__scenario="seventeen_digit_total")
    assert b'"total": 123456789012345.67' in response.content
    assert response.json()["next"] is None


def test_rate_limit_and_latency_apply_to_invoices(faulty):
    faulty.clear_faults()
    faulty.set_rate_limit(2, burst=2)  # slow enough that a busy machine still exhausts the bucket
    try:
        statuses = [api(faulty, "/invoices/", page_size=1) for _ in range(4)]
        assert [r.status_code for r in statuses[:2]] == [200, 200]
        limited = [r for r in statuses[2:] if r.status_code == 429]
        assert limited and 0 < float(limited[0].headers["Retry-After"]) <= 0.5
    finally:
        faulty.set_rate_limit(0)
    faulty.set_latency(100)
    try:
        assert api(faulty, "/plans/").elapsed.total_seconds() >= 0.1
    finally:
        faulty.set_latency(0)


def test_request_log_records_every_resource_path(faulty):
    faulty.reset()
    api(faulty, "/creditnotes/", status="draft")
    api(faulty, "/nonsense/")
    log = faulty.requests()
    assert [(e["path"], e["status"]) for e in log] == [("/creditnotes/", 200), ("/nonsense/", 404)]


def test_same_seed_same_billing_data():
    with PiriodEmulator(customers=15, seed=3) as first, PiriodEmulator(customers=15, seed=3) as second:
        for resource in ("invoices", "payments", "subscriptions", "plans", "creditnotes"):
            assert first.records(resource) == second.records(resource)


def test_seed_options_change_the_amount_of_billing_data():
    with (
        PiriodEmulator(customers=40, seed=1, products=2, invoices_per_customer=1) as small,
        PiriodEmulator(customers=40, seed=1, products=9, invoices_per_customer=6) as large,
    ):
        small_counts, large_counts = small.counts(), large.counts()
    assert small_counts["products"]["live"] == 2 and large_counts["products"]["live"] == 9
    assert small_counts["customers"] == large_counts["customers"]
    assert small_counts["invoices"]["live"] * 3 < large_counts["invoices"]["live"]


def test_separate_process_serves_every_resource_with_the_same_options():
    with PiriodEmulator(customers=10, products=3, invoices_per_customer=2, in_process=False) as emulator:
        assert emulator.counts()["products"]["live"] == 3
        invoice = emulator.create("invoices", total=Decimal("123456789012345.99"))
        assert b"123456789012345.99" in api(emulator, f"/invoices/{invoice['id']}/").content


def test_cli_documents_the_resources_and_the_seed_options(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in (
        "invoices",
        "payments",
        "subscriptions",
        "creditnotes",
        "plans",
        "products",
        "payment-receipts",
        "contacts",
        "--products",
        "--invoices-per-customer",
        "inv_17DigitTotal0000000000",
    ):
        assert word in text
    options = parse_args(["--products", "4", "--invoices-per-customer", "5"])
    assert (options.products, options.invoices_per_customer) == (4, 5)
