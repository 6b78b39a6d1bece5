"""Money through XCom and trigger events: checked against Airflow's own XCom serialiser, not a copy of it."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from airflow_provider_piriod.operators.xcom import carried_exactly, event_value, for_xcom, has_decimal, success_event

try:  # Airflow 3: what BaseXCom.serialize_value / deserialize_value run
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow 2.11
    from airflow.serialization.serde import deserialize, serialize


def through_xcom(value):
    """What a downstream task receives for ``value``: Airflow's serde, stored as JSON text in between."""
    return deserialize(json.loads(json.dumps(serialize(value))))


# a float cannot hold any of these; serde carries the first group exactly and changes the second
CARRIED = ["123456789012345.67", "9999999999999999", "1234567890123456.5", "-123456789012345.67", "1E+400"]
CHANGED = [
    "1234567890123.4567",
    "0.10000000000000001",
    "12345678901234567.89",
    "123456789012345.63",
    "-98765432109876.54",
]


@pytest.mark.parametrize("text", CARRIED + CHANGED)
def test_the_rule_agrees_with_airflows_serialiser(text):
    number = Decimal(text)
    back = through_xcom(number)
    assert carried_exactly(number) is (back == number), f"serde gave back {back!r}"
    assert (text in CARRIED) is carried_exactly(number)


@pytest.mark.parametrize("text", CARRIED)
def test_a_decimal_xcom_carries_stays_a_decimal_with_its_value(text):
    invoice = {"id": "inv_1", "total": Decimal(text), "lines": [{"amount": Decimal(text)}], "tax": 0.5}
    pushed = for_xcom(invoice)
    assert pushed == invoice
    received = through_xcom(pushed)
    assert received == invoice and isinstance(received["total"], Decimal)


@pytest.mark.parametrize("text", CHANGED)
def test_a_decimal_xcom_would_change_travels_as_its_exact_digits(text, caplog):
    invoice = {"id": "inv_1", "lines": [{"amount": Decimal(text)}]}
    with caplog.at_level(logging.WARNING):
        pushed = for_xcom(invoice, where="invoice")
    assert pushed == {"id": "inv_1", "lines": [{"amount": text}]}
    assert through_xcom(pushed) == pushed and Decimal(through_xcom(pushed)["lines"][0]["amount"]) == Decimal(text)
    assert f"invoice.lines.0.amount = {text}" in caplog.text


def test_for_xcom_leaves_plain_json_alone():
    value = [{"a": 1, "b": 0.1, "c": None, "d": [True, "x"]}]
    assert for_xcom(value) == value


def test_success_events_are_plain_json_and_give_back_the_same_value():
    plain = {"id": "cus_1", "balance": 10.5}
    assert success_event(plain, "ok") == {"status": "success", "value": plain, "message": "ok"}
    exact = [{"id": "inv_1", "total": Decimal("123456789012345.67")}]
    event = success_event(exact, "ok")
    assert "value" not in event and json.loads(json.dumps(event)) == event
    restored = event_value(json.loads(json.dumps(event)))
    assert restored == exact and isinstance(restored[0]["total"], Decimal)
    assert event_value({"status": "success", "value": plain}) == plain  # an event from an older trigger


def test_has_decimal_looks_everywhere():
    assert has_decimal({"a": [{"b": Decimal("1")}]}) and not has_decimal({"a": [{"b": 1.0}]})


def test_a_value_nested_past_the_recursion_limit_is_a_typed_error_not_a_recursion_error():
    import sys

    from airflow_provider_piriod.exceptions import PiriodResponseError

    value: list = []
    for _ in range(sys.getrecursionlimit() + 10):  # what Python 3.13's decoder accepts and 3.11's refuses
        value = [value]
    with pytest.raises(PiriodResponseError, match="nested more deeply than XCom can carry"):
        for_xcom(value, where="value")
