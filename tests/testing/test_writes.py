"""The emulator takes Piriod's writes (creates, updates, deletes, actions) and can lose a write's answer."""

from __future__ import annotations

import time

import pytest
import requests

pytestmark = pytest.mark.piriod_emulator(customers=8)

INVOICE_TOTALS = ("amount", "subtotal", "total", "total_adjusted", "exempt", "tax", "retention", "discount")


def call(emulator, method, path, body=None, *, data=None, token=None, workspace=None, test_mode=None, timeout=10):
    headers = {
        "Authorization": f"Token {emulator.token if token is None else token}",
        "x-simple-workspace": emulator.workspace if workspace is None else workspace,
    }
    if test_mode is not None:
        headers["x-piriod-test-mode"] = test_mode
    return requests.request(method, f"{emulator.url}{path}", json=body, data=data, headers=headers, timeout=timeout)


def a_customer(emulator, **fields):
    response = call(emulator, "POST", "/customers/", {"name": "Comercial Andes SpA", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def stored(emulator, resource, key):
    """The stored objects carrying ``metadata.key == key`` (how a client finds its own write again)."""
    return [o for o in emulator.objects(resource) if (o.get("metadata") or {}).get("key") == key]


# ------------------------------------------------------------------ creates


def test_create_a_customer_then_read_it_list_it_and_filter_it_by_metadata(piriod_emulator):
    customer = a_customer(piriod_emulator, email="pagos@andes.cl", metadata={"crm": "C-1", "tier": 2})
    assert customer["id"].startswith("cus_")
    assert customer["status"] == "active"
    assert customer["metadata"] == {"crm": "C-1", "tier": 2}
    assert customer["created"] == customer["updated"] and customer["created"].endswith("Z")
    seeded = piriod_emulator.customers()[0]
    assert set(customer) == set(seeded)  # the same shape as the objects served for reads
    assert call(piriod_emulator, "GET", f"/customers/{customer['id']}/").json() == customer
    listed = call(piriod_emulator, "GET", "/customers/?page_size=100").json()["results"]
    assert customer["id"] in [c["id"] for c in listed]
    found = call(piriod_emulator, "GET", "/customers/?metadata__crm=C-1").json()
    assert [c["id"] for c in found["results"]] == [customer["id"]]
    assert customer in piriod_emulator.objects("customers")


def test_a_created_customer_takes_its_country_and_currency(piriod_emulator):
    customer = a_customer(piriod_emulator, country="MX")
    assert customer["country"]["id"] == "MX" and customer["currency"] == "MXN"


@pytest.mark.parametrize(
    ("lines", "total"),
    [
        ([("3", "19.99"), ("1", "0.01")], "59.98"),
        ([(3, "19.99"), (1, "0.01")], "59.98"),
        ([(3, "123456789012345.67")], "370370367037037.01"),
        ([("1.5", "0.10"), (2, "0.005")], "0.160"),
        ([], "0"),
    ],
)
def test_invoice_totals_are_exact_decimal_strings(piriod_emulator, lines, total):
    customer = a_customer(piriod_emulator)
    body = {
        "customer": customer["id"],
        "lines": [{"description": f"item {i}", "quantity": q, "unit_price": p} for i, (q, p) in enumerate(lines)],
    }
    response = call(piriod_emulator, "POST", "/invoices/", body)
    assert response.status_code == 201, response.text
    assert '"total": "' + total + '"' in response.text  # a JSON string on the wire, every digit
    invoice = response.json()
    assert invoice["id"].startswith("inv_") and invoice["status"] == "draft"
    assert invoice["total"] == invoice["subtotal"] == invoice["amount"] == invoice["total_adjusted"] == total
    assert all(isinstance(invoice[name], str) for name in INVOICE_TOTALS)
    assert [line["unit_price"] for line in invoice["lines"]] == [p for _, p in lines]
    seeded = piriod_emulator.records("invoices")[0]
    assert set(seeded) <= set(invoice)
    assert call(piriod_emulator, "GET", f"/invoices/{invoice['id']}/").json() == invoice


def test_create_a_subscription_and_a_payment_with_their_default_status(piriod_emulator):
    customer = a_customer(piriod_emulator)
    subscription = call(piriod_emulator, "POST", "/subscriptions/", {"customer": customer["id"]}).json()
    assert subscription["id"].startswith("sub_") and subscription["status"] == "active"
    payment = call(
        piriod_emulator, "POST", "/payments/", {"customer": customer["id"], "amount": "1500.50", "metadata": {"a": 1}}
    )
    assert payment.status_code == 201
    assert payment.json()["id"].startswith("pay_")
    assert payment.json()["status"] == "succeeded" and payment.json()["amount"] == "1500.50"
    got = call(piriod_emulator, "GET", f"/payments/?metadata__a=1&customer={customer['id']}").json()
    assert [p["id"] for p in got["results"]] == [payment.json()["id"]]


@pytest.mark.parametrize(
    ("path", "body", "errors"),
    [
        ("/customers/", {}, {"name": ["This field is required."]}),
        ("/customers/", {"name": "  "}, {"name": ["This field may not be blank."]}),
        ("/invoices/", {}, {"customer": ["This field is required."]}),
        ("/invoices/", {"customer": "cus_x"}, {"customer": ['Invalid pk "cus_x" - object does not exist.']}),
        ("/subscriptions/", {}, {"customer": ["This field is required."]}),
        ("/payments/", {}, {"amount": ["This field is required."], "customer": ["This field is required."]}),
        (
            "/customers/",
            {"name": "A", "metadata": ["x"]},
            {"metadata": ['Expected a dictionary of items but got type "list".']},
        ),
        ("/customers/", {"name": "A", "status": "gone"}, {"status": ['"gone" is not a valid choice.']}),
    ],
)
def test_refused_creates_answer_drf_field_errors_and_store_nothing(piriod_emulator, path, body, errors):
    before = len(piriod_emulator.objects(path.strip("/")))
    response = call(piriod_emulator, "POST", path, body)
    assert response.status_code == 400
    assert response.json() == errors
    assert len(piriod_emulator.objects(path.strip("/"))) == before


def test_invoice_line_and_amount_errors(piriod_emulator):
    customer = a_customer(piriod_emulator)["id"]
    lines = [{"description": "ok", "quantity": 1, "unit_price": "1"}, {"quantity": "x"}, 7]
    response = call(piriod_emulator, "POST", "/invoices/", {"customer": customer, "lines": lines})
    assert response.status_code == 400
    assert response.json() == {
        "lines": [
            {},
            {"quantity": ["A valid number is required."], "unit_price": ["This field is required."]},
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]},
        ]
    }
    bad = call(piriod_emulator, "POST", "/invoices/", {"customer": customer, "lines": "many"})
    assert bad.json() == {"lines": ['Expected a list of items but got type "str".']}
    amount = call(piriod_emulator, "POST", "/payments/", {"customer": customer, "amount": "NaN"})
    assert amount.json() == {"amount": ["A valid number is required."]}


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"amount": NaN}'])
def test_a_body_that_is_not_a_json_object_is_a_non_field_error(piriod_emulator, data):
    response = call(piriod_emulator, "POST", "/customers/", data=data)
    assert response.status_code == 400
    assert list(response.json()) == ["non_field_errors"]
    assert all(isinstance(message, str) for message in response.json()["non_field_errors"])


def test_writes_are_authenticated_like_reads_and_kept_per_mode(piriod_emulator):
    before = len(piriod_emulator.objects("customers"))
    assert call(piriod_emulator, "POST", "/customers/", {"name": "A"}, token="wrong").status_code == 401
    foreign = piriod_emulator.info()["other_workspace"]
    assert call(piriod_emulator, "POST", "/customers/", {"name": "A"}, workspace=foreign).status_code == 403
    assert len(piriod_emulator.objects("customers")) == before
    test_customer = call(piriod_emulator, "POST", "/customers/", {"name": "T"}, test_mode="true").json()
    assert test_customer["test_mode"] is True
    assert call(piriod_emulator, "GET", f"/customers/{test_customer['id']}/").status_code == 404
    assert call(piriod_emulator, "GET", f"/customers/{test_customer['id']}/", test_mode="true").status_code == 200
    assert test_customer in piriod_emulator.objects("customers", test_mode=True)
    assert test_customer not in piriod_emulator.objects("customers", test_mode=False)
    live_parent = a_customer(piriod_emulator)["id"]  # a test-mode invoice cannot name a live customer
    refused = call(piriod_emulator, "POST", "/invoices/", {"customer": live_parent}, test_mode="true")
    assert refused.status_code == 400


# ------------------------------------------------------------------ updates, deletes, actions


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_updates_replace_the_given_fields_and_refresh_updated(piriod_emulator, method):
    customer = a_customer(piriod_emulator, email="a@b.cl", metadata={"old": "1", "keep": "no"})
    time.sleep(0.01)
    response = call(piriod_emulator, method, f"/customers/{customer['id']}/", {"name": "Nuevo", "metadata": {"n": 1}})
    assert response.status_code == 200
    changed = response.json()
    assert changed["name"] == "Nuevo" and changed["email"] == "a@b.cl"
    assert changed["metadata"] == {"n": 1}  # replaced as a whole
    assert changed["updated"] > customer["updated"] and changed["created"] == customer["created"]
    assert call(piriod_emulator, "GET", f"/customers/{customer['id']}/").json() == changed
    assert call(piriod_emulator, "GET", "/customers/?metadata__old=1").json()["count"] == 0


def test_update_a_seeded_contact_invoice_and_subscription(piriod_emulator):
    contact = piriod_emulator.records("contacts")[0]
    response = call(piriod_emulator, "PATCH", f"/contacts/{contact['id']}/", {"email": "nuevo@x.cl", "id": "con_x"})
    assert response.status_code == 200 and response.json()["email"] == "nuevo@x.cl"
    assert response.json()["id"] == contact["id"]  # read-only fields are ignored
    embedded = piriod_emulator.record("customers", contact["customer"])["contacts"]
    assert "nuevo@x.cl" in [c["email"] for c in embedded]
    invoice = piriod_emulator.records("invoices")[0]
    lines = [{"description": "x", "quantity": 2, "unit_price": "0.10"}]
    patched = call(piriod_emulator, "PATCH", f"/invoices/{invoice['id']}/", {"lines": lines}).json()
    assert patched["total"] == "0.20"
    subscription = piriod_emulator.records("subscriptions")[0]
    put = call(piriod_emulator, "PUT", f"/subscriptions/{subscription['id']}/", {"metadata": {"plan": "pro"}})
    assert put.status_code == 200 and put.json()["metadata"] == {"plan": "pro"}
    bad = call(piriod_emulator, "PATCH", f"/subscriptions/{subscription['id']}/", {"metadata": "pro"})
    assert bad.status_code == 400 and list(bad.json()) == ["metadata"]


@pytest.mark.parametrize("resource", ["customers", "contacts", "invoices", "subscriptions"])
def test_updating_a_missing_object_is_404(piriod_emulator, resource):
    response = call(piriod_emulator, "PATCH", f"/{resource}/nope_1/", {"metadata": {}})
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_delete_archives_a_customer_and_cancels_a_subscription(piriod_emulator):
    customer = a_customer(piriod_emulator)
    subscription = call(piriod_emulator, "POST", "/subscriptions/", {"customer": customer["id"]}).json()
    for path, status in (
        (f"/subscriptions/{subscription['id']}/", "cancelled"),
        (f"/customers/{customer['id']}/", "archived"),
    ):
        response = call(piriod_emulator, "DELETE", path)
        assert response.status_code == 204 and response.content == b""
        assert call(piriod_emulator, "GET", path).json()["status"] == status
    assert call(piriod_emulator, "DELETE", "/customers/cus_missing/").status_code == 404


def test_finalize_an_invoice_once(piriod_emulator):
    customer = a_customer(piriod_emulator)["id"]
    invoice = call(piriod_emulator, "POST", "/invoices/", {"customer": customer}).json()
    finalized = call(piriod_emulator, "POST", f"/invoices/{invoice['id']}/finalize/")
    assert finalized.status_code == 200
    assert finalized.json()["status"] == "finalized" and finalized.json()["number"] is not None
    again = call(piriod_emulator, "POST", f"/invoices/{invoice['id']}/finalize/", {})
    assert again.status_code == 400 and again.json() == {"non_field_errors": ["Invoice is not a draft."]}
    pending = call(piriod_emulator, "POST", "/invoices/", {"customer": customer, "status": "pending"}).json()
    assert call(piriod_emulator, "POST", f"/invoices/{pending['id']}/finalize/").json()["status"] == "finalized"
    assert call(piriod_emulator, "POST", f"/invoices/{invoice['id']}/void/").status_code == 404
    assert call(piriod_emulator, "POST", "/invoices/inv_missing/finalize/").status_code == 404


def test_pause_and_resume_a_subscription(piriod_emulator):
    customer = a_customer(piriod_emulator)["id"]
    path = "/subscriptions/" + call(piriod_emulator, "POST", "/subscriptions/", {"customer": customer}).json()["id"]
    assert call(piriod_emulator, "POST", f"{path}/resume/").status_code == 400
    assert call(piriod_emulator, "POST", f"{path}/pause/").json()["status"] == "paused"
    assert call(piriod_emulator, "POST", f"{path}/pause/").status_code == 400
    assert call(piriod_emulator, "POST", f"{path}/resume/").json()["status"] == "active"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/plans/"),
        ("POST", "/contacts/"),
        ("PATCH", "/customers/"),
        ("DELETE", "/invoices/{invoice}/"),
        ("POST", "/invoices/{invoice}/"),
        ("GET", "/invoices/{invoice}/finalize/"),
        ("PATCH", "/payments/{payment}/"),
    ],
)
def test_methods_a_path_does_not_take_are_405(piriod_emulator, method, path):
    ids = {
        "invoice": piriod_emulator.records("invoices")[0]["id"],
        "payment": piriod_emulator.records("payments")[0]["id"],
    }
    response = call(piriod_emulator, method, path.format(**ids), {})
    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method}" not allowed.'}


# ------------------------------------------------------------------ faults that commit and then lose the answer


def test_commit_then_drop_stores_the_write_and_sends_nothing(piriod_emulator):
    customer = a_customer(piriod_emulator)["id"]
    piriod_emulator.add_fault("commit_then_drop", method="POST", path="/invoices/")
    body = {
        "customer": customer,
        "metadata": {"key": "drop-1"},
        "lines": [{"description": "a", "quantity": 1, "unit_price": "5"}],
    }
    with pytest.raises(requests.ConnectionError):
        call(piriod_emulator, "POST", "/invoices/", body)
    [invoice] = stored(piriod_emulator, "invoices", "drop-1")
    assert invoice["total"] == "5"
    assert piriod_emulator.count_requests("POST", "/invoices/") == 1
    entry = piriod_emulator.requests()[-1]
    assert (entry["fault"], entry["served"], entry["status"]) == ("commit_then_drop", 201, None)
    assert call(piriod_emulator, "GET", "/invoices/?metadata__key=drop-1").json()["count"] == 1


def test_commit_then_status_stores_the_write_and_answers_502_html(piriod_emulator):
    fault = piriod_emulator.add_fault("commit_then_status", method="POST")
    assert fault["status"] == 502 and fault["method"] == "POST"
    response = call(piriod_emulator, "POST", "/customers/", {"name": "B", "metadata": {"key": "status-1"}})
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html" and response.text.startswith("<html>")
    assert len(stored(piriod_emulator, "customers", "status-1")) == 1
    assert piriod_emulator.count_requests("POST", "/customers/") == 1
    piriod_emulator.add_fault("commit_then_status", status=504, method="PATCH")
    target = stored(piriod_emulator, "customers", "status-1")[0]["id"]
    assert call(piriod_emulator, "PATCH", f"/customers/{target}/", {"name": "C"}).status_code == 504
    assert piriod_emulator.record("customers", target)["name"] == "C"


def test_commit_then_slow_stores_the_write_and_answers_late(piriod_emulator):
    piriod_emulator.add_fault("commit_then_slow", method="POST", seconds=1.0)
    with pytest.raises(requests.Timeout):
        call(piriod_emulator, "POST", "/customers/", {"name": "S", "metadata": {"key": "slow-1"}}, timeout=0.3)
    assert len(stored(piriod_emulator, "customers", "slow-1")) == 1
    piriod_emulator.add_fault("commit_then_slow", method="POST", seconds=0.5)
    started = time.monotonic()
    late = call(piriod_emulator, "POST", "/customers/", {"name": "L", "metadata": {"key": "slow-2"}}, timeout=5)
    assert late.status_code == 201 and time.monotonic() - started >= 0.5
    assert [late.json()] == stored(piriod_emulator, "customers", "slow-2")
    assert piriod_emulator.count_requests("POST", "/customers/") == 2


def test_a_method_fault_leaves_other_methods_alone_and_a_status_fault_commits_nothing(piriod_emulator):
    added = requests.post(
        f"{piriod_emulator.url}/__emulator__/faults",
        json={"kind": "status", "status": 503, "method": "POST", "path": "/customers/*", "times": None},
        timeout=10,
    )
    assert added.status_code == 201 and added.json()["method"] == "POST"
    assert call(piriod_emulator, "GET", "/customers/").status_code == 200
    assert call(piriod_emulator, "POST", "/customers/", {"name": "X", "metadata": {"key": "never"}}).status_code == 503
    assert stored(piriod_emulator, "customers", "never") == []
    assert [e["fault"] for e in piriod_emulator.requests()] == [None, "status"]
    assert piriod_emulator.count_requests("GET", "/customers/") == 1
    assert piriod_emulator.count_requests(path="/customers/*") == 2


def test_the_request_log_keeps_the_write_body(piriod_emulator):
    a_customer(piriod_emulator, reference="R-1")
    [entry] = piriod_emulator.requests()
    assert entry["method"] == "POST" and entry["status"] == 201 and '"R-1"' in entry["body"]
