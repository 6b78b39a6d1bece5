"""What a write body may hold, checked as Django REST Framework checks it, and the objects a create makes.

A refused body raises :class:`Invalid` carrying DRF's 400 body: each field mapped to a list of message
strings, ``non_field_errors`` for the rest, a list of per-item objects for a bad ``lines`` item. Money is
``decimal.Decimal`` from the JSON text on (never a float) and is written back as a decimal string.
Fields a resource does not have are ignored, as DRF ignores them; ``id``, ``created``, ``updated`` and
``test_mode`` are read-only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

from airflow_provider_piriod.testing.data import COUNTRIES, CURRENCY, STATES, isoformat

READ_ONLY = ("id", "created", "updated", "test_mode")
STATUSES = {
    "customers": ("active", "archived", "pending"),
    "invoices": ("draft", "finalized", "paid", "cancelled", "uncollectible", "pending"),
    "subscriptions": ("active", "paused", "cancelled", "finalized", "needs_attention"),
    "payments": ("cancelled", "failed", "incomplete", "processing", "requires_payment_method", "succeeded"),
}
DEFAULT_STATUS = {"customers": "active", "invoices": "draft", "subscriptions": "active", "payments": "succeeded"}
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("name",),
    "invoices": ("customer",),
    "subscriptions": ("customer",),
    "payments": ("amount", "customer"),
}
#: fields naming another object, and its resource; such an id must exist in the same workspace and mode
REFERENCES = {
    "contacts": {"customer": "customers"},
    "invoices": {"customer": "customers", "subscription": "subscriptions"},
    "subscriptions": {"customer": "customers"},
    "payments": {"customer": "customers", "invoice": "invoices", "subscription": "subscriptions"},
}
REQUIRED_MESSAGE = "This field is required."
Exists = Callable[[str, Any], bool]  # (resource, id) -> visible in the caller's workspace and mode


class Invalid(Exception):
    """A body Piriod refuses with 400; ``errors`` is the DRF error body."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(json.dumps(errors, default=str))
        self.errors = errors


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a write body (empty means ``{}``); numbers with a fraction are Decimal."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid({"non_field_errors": [f"JSON parse error - {exc}"]}) from None
    if not isinstance(data, dict):
        raise Invalid({"non_field_errors": [f"Invalid data. Expected a dictionary, but got {_type_name(data)}."]})
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _type_name(value: Any) -> str:
    return {dict: "dict", list: "list", str: "str", bool: "bool", int: "int"}.get(type(value), type(value).__name__)


def clean(resource: str, data: dict[str, Any], exists: Exists, *, creating: bool) -> dict[str, Any]:
    """The writable fields of ``data``, checked and converted (money as decimal strings, lines with totals)."""
    errors: dict[str, Any] = {}
    fields = {key: value for key, value in data.items() if key not in READ_ONLY}
    if creating:
        for name in REQUIRED.get(resource, ()):
            if name not in fields:
                errors[name] = [REQUIRED_MESSAGE]
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            cleaned[name] = _field(resource, name, value, exists)
        except Invalid as invalid:
            errors[name] = invalid.errors["field"]
    if errors:
        raise Invalid(errors)
    return cleaned


def _field(resource: str, name: str, value: Any, exists: Exists) -> Any:
    """One field's value as stored; raises ``Invalid({"field": messages})``."""
    if value is None and name in REQUIRED.get(resource, ()):
        raise Invalid({"field": ["This field may not be null."]})
    if name == "metadata":
        if not isinstance(value, dict):
            raise Invalid({"field": [f'Expected a dictionary of items but got type "{_type_name(value)}".']})
        return value
    if name == "status" and resource in STATUSES:
        if value not in STATUSES[resource]:
            raise Invalid({"field": [f'"{value}" is not a valid choice.']})
        return value
    if name == "name" and resource in ("customers", "contacts"):
        if not isinstance(value, str):
            raise Invalid({"field": ["Not a valid string."]})
        if not value.strip():
            raise Invalid({"field": ["This field may not be blank."]})
        return value
    linked = REFERENCES.get(resource, {}).get(name)
    if linked is not None and value is not None:
        if not isinstance(value, str):
            raise Invalid({"field": [f"Incorrect type. Expected pk value, received {_type_name(value)}."]})
        if not exists(linked, value):
            raise Invalid({"field": [f'Invalid pk "{value}" - object does not exist.']})
        return value
    if resource == "payments" and name in ("amount", "balance"):
        return str(_decimal(value))
    if name == "lines":
        return invoice_lines(value) if resource == "invoices" else _list(value)
    if resource == "customers" and name == "country" and value is not None:
        if not isinstance(value, str) or value not in COUNTRIES:
            raise Invalid({"field": [f'Invalid pk "{value}" - object does not exist.']})
        return dict(COUNTRIES[value], currencies=list(COUNTRIES[value]["currencies"]))
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid({"field": [f'Expected a list of items but got type "{_type_name(value)}".']})
    return value


def _decimal(value: Any) -> Decimal:
    """A DRF DecimalField value: a decimal string or a JSON number (already Decimal or int), finite."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise Invalid({"field": ["A valid number is required."]})
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise Invalid({"field": ["A valid number is required."]}) from None
    if not number.is_finite():
        raise Invalid({"field": ["A valid number is required."]})
    return number


def _exact(operation: Callable[[], Decimal]) -> Decimal:
    """``operation`` computed with enough precision that nothing is rounded (Inexact is refused)."""
    with localcontext() as context:
        context.prec = 100
        context.traps[Inexact] = True
        try:
            return operation()
        except Inexact:
            raise Invalid({"field": ["Ensure that there are no more than 100 digits in total."]}) from None


def _product(quantity: Decimal, unit_price: Decimal) -> Callable[[], Decimal]:
    return lambda: quantity * unit_price


def invoice_lines(value: Any) -> list[dict[str, Any]]:
    """Invoice lines from ``description``, ``quantity`` and ``unit_price``; each gets its exact ``total``."""
    items = _list(value)
    errors: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            errors.append({"non_field_errors": [f"Invalid data. Expected a dictionary, but got {_type_name(item)}."]})
            continue
        problems: dict[str, list[str]] = {}
        numbers: dict[str, Decimal] = {}
        for name in ("quantity", "unit_price"):
            if name not in item or item[name] is None:
                problems[name] = [REQUIRED_MESSAGE if name not in item else "This field may not be null."]
                continue
            try:
                numbers[name] = _decimal(item[name])
            except Invalid as invalid:
                problems[name] = invalid.errors["field"]
        description = item.get("description", "")
        if not isinstance(description, str):
            problems["description"] = ["Not a valid string."]
        errors.append(problems)
        if problems:
            continue
        quantity, unit_price = numbers["quantity"], numbers["unit_price"]
        lines.append(
            {
                "id": item.get("id"),
                "name": description,
                "description": description,
                "quantity": item["quantity"] if isinstance(item["quantity"], int) else str(quantity),
                "unit_price": str(unit_price),
                "amount": str(unit_price),
                "discount": "0",
                "exempt": False,
                "total": str(_exact(_product(quantity, unit_price))),
                "plan": item.get("plan"),
            }
        )
    if any(errors):
        raise Invalid({"field": errors})
    return lines


def invoice_totals(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The invoice's money fields (the names seeded invoices use), as decimal strings; no tax or discount."""
    amount = _exact(lambda: sum((Decimal(line["total"]) for line in lines), Decimal(0)))
    return {
        "amount": str(amount),
        "exempt": "0",
        "tax": "0",
        "tax_percent": 0,
        "subtotal": str(amount),
        "total": str(amount),
        "total_adjusted": str(amount),
        "retention": "0",
        "discount": "0",
        "discount_scheme": "%",
    }


def new_object(
    resource: str, object_id: Any, fields: dict[str, Any], parent: dict[str, Any], test_mode: bool
) -> dict[str, Any]:
    """A created object: the fields every object of ``resource`` has, defaults, then ``fields`` laid over."""
    now = datetime.now(timezone.utc)
    stamp, today = isoformat(now), now.date().isoformat()
    currency = fields.get("currency") or parent.get("currency") or "CLP"
    template = TEMPLATES[resource](parent, currency, today)
    record = {"id": object_id, **template, "status": DEFAULT_STATUS[resource], "metadata": {}}
    record.update({key: value for key, value in fields.items() if key in record})
    if resource == "customers":
        _customer_defaults(record, fields)
    if resource == "invoices":
        for index, line in enumerate(record["lines"]):
            line["id"] = line["id"] or f"lin_{str(object_id)[4:]}{index:02d}"
        record.update(invoice_totals(record["lines"]))
    if resource == "payments":
        succeeded = record["status"] == "succeeded"
        record["balance"] = fields.get("balance", "0" if succeeded else record["amount"])
        record["payment_date"] = stamp if succeeded else None
    return dict(record, test_mode=test_mode, created=stamp, updated=stamp)


def _customer_defaults(record: dict[str, Any], fields: dict[str, Any]) -> None:
    country = record.get("country")
    country_id = country.get("id") if isinstance(country, dict) else None
    if "currency" not in fields and country_id:
        record["currency"] = CURRENCY[country_id]
    state = fields.get("state")
    if state is not None and country_id:
        for state_id, name, _cities, _prefix in STATES[country_id]:
            if str(state_id) == str(state):
                record["state"] = {"id": state_id, "name": name, "country": country_id}


def _customer(parent: dict[str, Any], currency: str, today: str) -> dict[str, Any]:
    return {
        "name": None,
        "address": None,
        "country": None,
        "state": None,
        "currency": None,
        "email": None,
        "phone": None,
        "website": None,
        "zip_code": None,
        "manager": None,
        "reference": None,
        "tax_id": None,
        "tax_settings": {},
        "send_invoices": True,
        "send_collections": True,
        "send_vouchers": True,
        "contacts": [],
        "sources": [],
        "aggregations": {"sales": 0, "sales_current_period": 0, "balance": 0},
    }


def _invoice(parent: dict[str, Any], currency: str, today: str) -> dict[str, Any]:
    country = parent.get("country")
    country_id = country.get("id") if isinstance(country, dict) else country
    document = 34 if currency == "USD" and country_id == "CL" else 33 if country_id == "CL" else 1
    return {
        "customer": None,
        "document": document,
        "number": None,
        "currency": currency,
        **invoice_totals([]),
        "date": today,
        "due_date": today,
        "period_start": None,
        "period_end": None,
        "lines": [],
        "payments": [],
        "references": [],
        "subscription": None,
        "collection_method": None,
        "biller_status": None,
        "uncollectible": None,
    }


def _subscription(parent: dict[str, Any], currency: str, today: str) -> dict[str, Any]:
    return {
        "customer": None,
        "currency": currency,
        "date_start": today,
        "end_date": None,
        "billing_cycles": None,
        "next_billing": None,
        "previous_billing": None,
        "lines": [],
        "addons": [],
        "coupon": None,
        "collection_scheme": "send_invoice",
        "paused": False,
        "paused_reason": None,
        "cancelled": None,
        "cancel_reason": None,
    }


def _payment(parent: dict[str, Any], currency: str, today: str) -> dict[str, Any]:
    return {
        "amount": "0",
        "currency": currency,
        "date": today,
        "description": None,
        "invoice": None,
        "subscription": None,
        "customer": None,
        "balance": "0",
        "payment_date": None,
        "source": None,
        "failed_reason": None,
    }


TEMPLATES: dict[str, Callable[[dict[str, Any], str, str], dict[str, Any]]] = {
    "customers": _customer,
    "invoices": _invoice,
    "subscriptions": _subscription,
    "payments": _payment,
}
