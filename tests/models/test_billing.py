"""The billing models: exact money, dates and every timestamp shape, lenient ids, JSON given back as sent."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_piriod import jsoncodec, models
from airflow_provider_piriod.models import (
    Contact,
    CreditNote,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PiriodObject,
    Plan,
    Product,
    Subscription,
)

INVOICE_TEXT = b"""{
  "id": "inv_9f8e7d6c5b4a", "customer": "cus_01H8XYZ123ABC", "document": 33, "number": 1042, "currency": "CLP",
  "amount": 123456789012345.67, "exempt": 0, "tax": 19.00, "tax_percent": 19, "subtotal": 103745200010374.51,
  "total": 123456789012345.67, "total_adjusted": null, "retention": 0.1, "discount": 5, "discount_scheme": "%",
  "date": "2026-03-01", "due_date": "2026-03-31", "period_start": "2026-02-01", "period_end": "2026-02-28",
  "lines": [
    {"id": "lin_a1", "name": "Plan Pro", "quantity": 2, "amount": 51872600005187.255, "tax_code": "IVA"},
    {"id": "lin_a2", "name": "Soporte", "quantity": 1.5, "amount": 0.1}
  ],
  "payments": ["pay_1", 42, {"id": "pay_3", "amount": 10.5}],
  "references": [{"document": 801, "number": "OC-77"}],
  "subscription": "sub_77", "collection_method": "automatically", "status": "paid", "biller_status": "pending",
  "uncollectible": null, "metadata": {"erp": "SAP"}, "test_mode": false,
  "created": "2026-03-01T12:00:00Z", "updated": "2026-03-02 09:15:00", "dte_pdf": "https://example.com/a.pdf"
}"""


def sent_invoice() -> dict:
    return jsoncodec.loads(INVOICE_TEXT)


def test_exact_money_survives_decode_model_and_encode():
    data = sent_invoice()
    invoice = Invoice.from_json(data)
    assert invoice.total == invoice.amount == Decimal("123456789012345.67")
    assert invoice.subtotal == Decimal("103745200010374.51")
    assert invoice.to_json() == data
    text = jsoncodec.dumps(invoice.to_json())
    assert '"total":123456789012345.67' in text and '"amount":51872600005187.255' in text
    assert jsoncodec.loads(text) == data


def test_short_float_money_becomes_its_shortest_decimal():
    invoice = Invoice.from_json(sent_invoice())
    assert invoice.retention == Decimal("0.1") and invoice.tax == Decimal("19.0")
    assert invoice.lines[1].amount == Decimal("0.1")
    assert Payment.from_json({"id": 1, "amount": 0.30000000000000004}).amount == Decimal("0.30000000000000004")


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_money_converts_through_its_repr(value):
    amount = Payment.from_json({"id": 1, "amount": value}).amount
    assert amount.as_tuple() == Decimal(repr(value)).as_tuple()


@pytest.mark.parametrize(
    "amount", [float("nan"), float("inf"), -float("inf"), Decimal("NaN"), Decimal("Infinity"), "NaN", "Infinity", True]
)
def test_non_finite_money_is_refused(amount):
    with pytest.raises(ValidationError):
        Invoice.from_json({"id": "inv_1", "total": amount})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2023-11-07T05:31:56Z", datetime(2023, 11, 7, 5, 31, 56, tzinfo=timezone.utc)),
        (
            "2020-07-01T20:36:04.301041-04:00",
            datetime(2020, 7, 1, 20, 36, 4, 301041, tzinfo=timezone(timedelta(hours=-4))),
        ),
        ("2020-05-12 15:42:09", datetime(2020, 5, 12, 15, 42, 9)),  # no zone given: kept naive
    ],
)
def test_every_documented_timestamp_shape_parses(text, expected):
    payment = Payment.from_json({"id": "pay_1", "payment_date": text, "created": text, "updated": text})
    for moment in (payment.payment_date, payment.created, payment.updated):
        assert moment == expected and moment.utcoffset() == expected.utcoffset()
    assert payment.to_json()["payment_date"] == text


def test_date_fields_are_dates():
    invoice = Invoice.from_json(sent_invoice())
    assert (invoice.date, invoice.due_date) == (date(2026, 3, 1), date(2026, 3, 31))
    assert (invoice.period_start, invoice.period_end) == (date(2026, 2, 1), date(2026, 2, 28))
    subscription = Subscription.from_json(
        {
            "id": "sub_1",
            "date_start": "2025-01-15",
            "next_billing": "2026-04-15",
            "previous_billing": None,
            "end_date": None,
        }
    )
    assert subscription.date_start == date(2025, 1, 15) and type(subscription.next_billing) is date
    with pytest.raises(ValidationError):
        Invoice.from_json({"id": "inv_1", "due_date": "31/03/2026"})


def test_nested_invoice_lines_are_typed_and_give_back_their_json():
    data = sent_invoice()
    lines = Invoice.from_json(data).lines
    assert all(isinstance(line, InvoiceLine) for line in lines)
    assert lines[0].amount == Decimal("51872600005187.255") and lines[1].quantity == Decimal("1.5")
    assert lines[0].tax_code == "IVA"  # unknown line fields kept
    assert [line.to_json() for line in lines] == data["lines"]


def test_unknown_fields_are_kept_and_nothing_is_added():
    data = sent_invoice()
    invoice = Invoice.from_json(data)
    assert invoice.dte_pdf == "https://example.com/a.pdf" and invoice.model_extra == {"dte_pdf": data["dte_pdf"]}
    minimal = {"id": "inv_2", "brand_new_field": {"x": [1, 2]}}
    assert Invoice.from_json(minimal).to_json() == minimal


def test_to_json_is_a_deep_copy():
    data = sent_invoice()
    invoice = Invoice.from_json(data)
    exported = invoice.to_json()
    exported["lines"][0]["name"] = "changed"
    assert invoice.to_json() == data and data["lines"][0]["name"] == "Plan Pro"


def test_ids_and_references_may_be_integers_or_objects_where_piriod_shows_them():
    invoice = Invoice.from_json(sent_invoice())
    assert invoice.payments == ["pay_1", 42, {"id": "pay_3", "amount": 10.5}]
    assert invoice.references == [{"document": 801, "number": "OC-77"}] and invoice.number == 1042
    assert Payment.from_json({"id": 981}).id == 981 and Payment.from_json({"id": "pay_1"}).id == "pay_1"
    assert CreditNote.from_json({"id": 12, "invoice": 7}).invoice == 7
    assert Payment.from_json({"id": "981"}).id == "981"  # a string id stays a string


@pytest.mark.parametrize("model", [Customer, Invoice, Subscription, Plan, Product])
def test_string_id_resources_refuse_an_integer_id(model):
    with pytest.raises(ValidationError):
        model.from_json({"id": 5})


@pytest.mark.parametrize("model", [Customer, Invoice, Payment, Subscription, CreditNote, Plan, Product])
def test_typed_resources_need_an_id_and_nothing_else(model):
    with pytest.raises(ValidationError):
        model.from_json({"status": "active"})
    assert model.from_json({"id": "x_1"}).id == "x_1"


def test_uncollectible_is_a_status_or_a_timestamp():
    assert Invoice.from_json({"id": "inv_1", "status": "uncollectible"}).status == "uncollectible"
    invoice = Invoice.from_json({"id": "inv_1", "uncollectible": "2026-04-01T00:00:00Z"})
    assert invoice.uncollectible == datetime(2026, 4, 1, tzinfo=timezone.utc)
    assert Invoice.from_json({"id": "inv_1", "uncollectible": False}).uncollectible is False


def test_credit_note_shares_the_invoice_money_fields():
    note = CreditNote.from_json(
        jsoncodec.loads(
            b'{"id": 3, "invoice": "inv_1", "total": 98765432109876.543,'
            b' "status": "cancelled", "lines": [{"name": "x", "amount": 2}]}'
        )
    )
    assert note.total == Decimal("98765432109876.543") and note.lines[0].amount == Decimal(2)


def test_subscription_pause_and_cancel_fields_accept_flags_or_timestamps():
    subscription = Subscription.from_json(
        {
            "id": "sub_1",
            "status": "cancelled",
            "paused": False,
            "cancelled": "2026-01-02T03:04:05Z",
            "cancel_reason": "not_paid",
            "collection_scheme": "charge_payment",
            "billing_cycles": None,
        }
    )
    assert subscription.paused is False and subscription.cancelled.year == 2026


def test_products_embed_typed_plans():
    product = Product.from_json(
        {
            "id": "pro_1",
            "name": "Pro",
            "status": "active",
            "plans": [
                {"id": "pla_1", "amount": 19990, "currency": "CLP", "frequency": "monthly", "exempt": False},
                {"id": "pla_2", "amount": 29.9, "currency": "USD", "frequency": "annual", "usage_scheme": "metered"},
                "pla_3",
            ],
        }
    )
    monthly, annual, bare = product.plans
    assert isinstance(monthly, Plan) and monthly.amount == Decimal(19990) and monthly.exempt is False
    assert annual.amount == Decimal("29.9") and bare == "pla_3"
    assert annual.to_json() == product.to_json()["plans"][1]


def test_every_nested_model_gives_back_its_own_json_whichever_shape_was_sent():
    sent = {
        "id": "cus_1",
        "country": {"id": "CL", "name": "Chile", "extra": [1]},
        "state": "RM",  # older docs: a bare code, not an object
        "contacts": [{"id": "con_1", "email": "a@b.cl", "created": "2026-03-01 10:00"}, {}, {"id": "con_3"}],
        "aggregations": {"balance": 10.50},
    }
    customer = Customer.from_json(copy.deepcopy(sent))
    assert customer.country.to_json() == sent["country"] and customer.state == "RM"
    assert [contact.to_json() for contact in customer.contacts] == sent["contacts"]
    assert customer.aggregations.to_json() == {"balance": 10.50}
    built = Customer.model_validate(copy.deepcopy(sent))  # not from_json: nothing kept, nested or not
    assert all(model.__pydantic_private__ is None for model in (built, built.country, *built.contacts))


def test_models_of_your_own_keep_nested_json_in_dicts_tuples_and_aliased_fields():
    from pydantic import Field

    from airflow_provider_piriod.models import PiriodModel
    from airflow_provider_piriod.models.customers import Country

    class Portfolio(PiriodModel):
        id: str
        by_role: dict[str, Contact] | None = None
        pair: tuple[Contact, Contact] | None = None
        home: Country | None = Field(default=None, alias="pais")

    contact = {"id": "con_1", "created": "2026-03-01 10:00"}  # a timestamp shape a dump would rewrite
    sent = {"id": "pf_1", "by_role": {"billing": contact}, "pair": [contact, {"id": "con_2"}], "pais": {"id": "CL"}}
    portfolio = Portfolio.from_json(copy.deepcopy(sent))
    assert portfolio.by_role["billing"].to_json() == contact
    assert [member.to_json() for member in portfolio.pair] == sent["pair"]
    assert portfolio.home.to_json() == {"id": "CL"} and portfolio.to_json() == sent


def test_piriod_object_takes_anything_with_or_without_an_id():
    receipt = {"id": 77, "status": "finalized", "sources": ["src_1"], "total": 10.5, "nested": {"a": None}}
    assert PiriodObject.from_json(receipt).id == 77 and PiriodObject.from_json(receipt).total == 10.5
    assert PiriodObject.from_json(receipt).to_json() == receipt
    assert PiriodObject.from_json({}).id is None and PiriodObject.from_json({"id": "ban_1"}).id == "ban_1"


def test_models_built_in_code_export_their_fields_as_json():
    contact = Contact(id="con_1", name="Ana")
    assert contact.to_json() == {"id": "con_1", "name": "Ana"}
    invoice = Invoice.model_validate(copy.deepcopy(sent_invoice()))  # not from_json: no JSON to give back
    assert invoice.to_json()["id"] == "inv_9f8e7d6c5b4a"


def test_the_json_kept_survives_copies_and_pickling():
    import pickle

    invoice = Invoice.from_json(sent_invoice())
    for copied in (pickle.loads(pickle.dumps(invoice)), invoice.model_copy(), copy.deepcopy(invoice)):
        assert copied == invoice
        assert copied.to_json() == sent_invoice()
        assert copied.lines[0].to_json() == sent_invoice()["lines"][0]


def test_a_model_pickled_by_0_1_0_still_gives_back_its_json():
    import pickle

    state = Invoice.from_json(sent_invoice()).__getstate__()
    state["__pydantic_private__"] = {"_raw": sent_invoice()}  # what 0.1.0 pickled: its declared private attribute
    restored = pickle.loads(pickle.dumps(state))
    invoice = Invoice.__new__(Invoice)
    invoice.__setstate__(restored)
    assert invoice.to_json() == sent_invoice()


def test_an_empty_object_equals_one_built_without_json():
    assert PiriodObject.from_json({}) == PiriodObject()
    assert PiriodObject.from_json({}).to_json() == PiriodObject().to_json() == {}


def test_models_are_immutable():
    invoice = Invoice.from_json(sent_invoice())
    with pytest.raises(ValidationError):
        invoice.total = Decimal(0)


def test_every_model_the_registry_names_is_exported():
    for name in (
        "Customer",
        "Contact",
        "Invoice",
        "InvoiceLine",
        "Payment",
        "Subscription",
        "CreditNote",
        "Plan",
        "Product",
        "PiriodObject",
        "PiriodModel",
        "CustomerPage",
        "Country",
        "State",
        "Aggregations",
    ):
        assert name in models.__all__ and getattr(models, name).__name__ == name
