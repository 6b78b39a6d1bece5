"""What the emulator serves for each Piriod resource: id form, filterable fields, ordering and search.

Field lists follow the project's research notes on Piriod resources. A query parameter naming a
field a resource does not list is ignored, as Piriod ignores unknown parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Extractor = Callable[[dict[str, Any]], Any]


def _nested_id(name: str) -> Extractor:
    """A field holding an object (customers' ``country``, ``state``), filtered by that object's id."""

    def extract(record: dict[str, Any]) -> Any:
        nested = record.get(name)
        return nested.get("id") if isinstance(nested, dict) else nested

    return extract


def _list_of(name: str) -> Extractor:
    """A field holding a list of ids; a filter matches when any of them does."""
    return lambda record: record.get(name) or []


def _line_values(name: str) -> Extractor:
    """A value inside each of ``lines`` (a subscription's plans)."""
    return lambda record: [line.get(name) for line in record.get("lines") or [] if isinstance(line, dict)]


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    singular: str
    id_prefix: str | None  # None: integer ids
    exact: tuple[str, ...]  # ?field=value and ?field__in=a,b
    search: tuple[str, ...] = ()  # ?search=text, case-insensitive substring
    ordering: tuple[str, ...] = ("created", "updated", "id")
    timestamps: tuple[str, ...] = ("created", "updated")  # compared as instants (any documented shape)
    dates: tuple[str, ...] = ()  # YYYY-MM-DD, with __gte/__lte/__gt/__lt
    numbers: tuple[str, ...] = ()  # money, with __gte/__lte/__gt/__lt
    derived: dict[str, Extractor] = field(default_factory=dict)  # filters on a value computed from the record


CUSTOMERS = ResourceSpec(
    "customers",
    "customer",
    "cus_",
    exact=(
        "id",
        "name",
        "email",
        "tax_id",
        "currency",
        "status",
        "reference",
        "manager",
        "zip_code",
        "phone",
        "website",
        "send_invoices",
        "send_collections",
        "send_vouchers",
        "test_mode",
    ),
    search=("name", "email", "tax_id", "reference"),
    ordering=("created", "updated", "name", "email", "id", "status", "tax_id"),
    derived={
        "country": _nested_id("country"),
        "state": _nested_id("state"),
        "sources": _list_of("sources"),
        "subscriptions": _list_of("subscriptions"),
    },
)

RESOURCES: dict[str, ResourceSpec] = {
    spec.name: spec
    for spec in (
        CUSTOMERS,
        ResourceSpec(
            "contacts",
            "contact",
            "con_",
            exact=("id", "customer", "orgunit", "name", "email", "phone", "invoicing", "collections", "test_mode"),
            search=("name", "email"),
            ordering=("created", "updated", "name", "email", "id"),
        ),
        ResourceSpec(
            "invoices",
            "invoice",
            "inv_",
            exact=(
                "id",
                "customer",
                "subscription",
                "document",
                "number",
                "currency",
                "status",
                "biller_status",
                "collection_method",
                "discount_scheme",
                "test_mode",
            ),
            search=("id", "number", "customer"),
            ordering=("created", "updated", "date", "due_date", "number", "total", "status", "id"),
            timestamps=("created", "updated", "uncollectible"),
            dates=("date", "due_date", "period_start", "period_end"),
            numbers=("amount", "subtotal", "tax", "total", "total_adjusted"),
        ),
        ResourceSpec(
            "payments",
            "payment",
            "pay_",
            exact=(
                "id",
                "customer",
                "invoice",
                "subscription",
                "status",
                "currency",
                "source",
                "failed_reason",
                "test_mode",
            ),
            search=("id", "description"),
            ordering=("created", "updated", "date", "payment_date", "amount", "status", "id"),
            timestamps=("created", "updated", "payment_date"),
            dates=("date",),
            numbers=("amount", "balance"),
        ),
        ResourceSpec(
            "subscriptions",
            "subscription",
            "sub_",
            exact=(
                "id",
                "customer",
                "status",
                "collection_scheme",
                "coupon",
                "paused",
                "billing_cycles",
                "cancel_reason",
                "test_mode",
            ),
            search=("id", "customer"),
            ordering=("created", "updated", "date_start", "next_billing", "status", "id"),
            dates=("date_start", "end_date", "next_billing", "previous_billing"),
            derived={"plan": _line_values("plan")},
        ),
        ResourceSpec(
            "creditnotes",
            "credit note",
            None,
            exact=("id", "invoice", "document", "number", "currency", "status", "biller_status", "note", "test_mode"),
            search=("note", "number", "invoice"),
            ordering=("created", "updated", "date", "number", "total", "status", "id"),
            dates=("date",),
            numbers=("amount", "subtotal", "tax", "total"),
        ),
        ResourceSpec(
            "plans",
            "plan",
            "pla_",
            exact=(
                "id",
                "product",
                "currency",
                "frequency",
                "usage_scheme",
                "usage_aggregation",
                "tiers_mode",
                "sku",
                "exempt",
                "unit_label",
                "status",
                "test_mode",
            ),
            search=("sku", "unit_label", "product"),
            ordering=("created", "updated", "amount", "frequency", "status", "id"),
            numbers=("amount",),
        ),
        ResourceSpec(
            "products",
            "product",
            "pro_",
            exact=("id", "name", "sku", "status", "test_mode"),
            search=("name", "description", "sku"),
            ordering=("created", "updated", "name", "status", "id"),
        ),
        ResourceSpec(
            "payment-receipts",
            "payment receipt",
            None,
            exact=("id", "customer", "payment", "status", "biller_status", "currency", "test_mode"),
            search=("id", "customer", "payment"),
            ordering=("created", "updated", "date", "amount", "status", "id"),
            dates=("date",),
            numbers=("amount",),
            derived={"sources": _list_of("sources")},
        ),
    )
}

# Generated on first use, so that a benchmark serving only customers does not pay for them.
BILLING_RESOURCES = frozenset(
    ("invoices", "payments", "subscriptions", "creditnotes", "plans", "products", "payment-receipts")
)
