"""Models are lenient on read, exact on money, and give back the JSON Piriod sent."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from airflow_provider_piriod.models import Customer, CustomerPage
from airflow_provider_piriod.testing.data import make_customers

NEW_DOCS = {
    "id": "cus_01H8XYZ123ABC",
    "name": "Acme SpA",
    "address": "Av. Siempre Viva 123",
    "country": {"id": "CL", "name": "Chile", "code": "+56", "has_regulation": True, "currencies": ["CLP"]},
    "state": {"id": 13, "name": "Región Metropolitana", "country": "CL"},
    "email": None,
    "phone": None,
    "aggregations": {"sales": 1234.5, "sales_current_period": 0, "balance": 0.1},
    "status": "active",
    "created": "2026-01-02T03:04:05Z",
    "updated": "2026-01-02T03:04:05.123456-03:00",
}
OLD_DOCS = {
    "id": "cus_dl6PTxQnTYy5BHYskV",
    "name": "Old Style",
    "country": {"id": "US", "name_en": "United States", "phone_code": "+1", "tax_percent": 0},
    "state": {"id": "USAZ", "name": "Arizona"},
    "future_field": {"x": [1, 2]},
}


def test_new_and_old_doc_shapes_both_parse():
    new, old = Customer.from_json(NEW_DOCS), Customer.from_json(OLD_DOCS)
    assert new.state.id == 13 and old.state.id == "USAZ"
    assert old.country.model_extra == {"name_en": "United States", "phone_code": "+1", "tax_percent": 0}
    assert old.future_field == {"x": [1, 2]}  # unknown fields kept
    assert new.email is None and old.email is None
    assert new.created.tzinfo is not None and new.updated.utcoffset().total_seconds() == -3 * 3600


def test_money_is_exact_decimal():
    aggregations = Customer.from_json(NEW_DOCS).aggregations
    assert aggregations.sales == Decimal("1234.5") and aggregations.balance == Decimal("0.1")
    assert isinstance(aggregations.sales_current_period, Decimal)


@pytest.mark.parametrize("data", [NEW_DOCS, OLD_DOCS, *make_customers(30, seed=2)])
def test_to_json_gives_back_exactly_what_piriod_sent(data):
    exported = Customer.from_json(data).to_json()
    assert exported == data
    assert json.dumps(exported, sort_keys=True) == json.dumps(data, sort_keys=True)  # numbers stay numbers


def test_to_json_is_a_copy_and_models_are_immutable():
    customer = Customer.from_json(NEW_DOCS)
    customer.to_json()["name"] = "changed"
    assert customer.to_json()["name"] == "Acme SpA"
    with pytest.raises(ValidationError):
        customer.name = "changed"


def test_id_is_required():
    with pytest.raises(ValidationError):
        Customer.from_json({"name": "no id"})


def test_page_envelope():
    page = CustomerPage.from_json(
        {
            "count": 2,
            "next": "https://api.piriod.com/customers/?page=2",
            "previous": None,
            "results": [NEW_DOCS, OLD_DOCS],
        }
    )
    assert page.count == 2 and [c.id for c in page.results] == [NEW_DOCS["id"], OLD_DOCS["id"]]
    assert page.results[1].to_json() == OLD_DOCS
