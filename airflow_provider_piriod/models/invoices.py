"""Invoices and credit notes: the billing documents, with their typed lines and exact money."""

from __future__ import annotations

import datetime as dt  # the module, because a field is named ``date``
from decimal import Decimal
from typing import Any

from airflow_provider_piriod.models.base import Money, PiriodModel, Ref, TimestampOrFlag


class InvoiceLine(PiriodModel):
    """One line of an invoice or credit note (``lin_`` ids)."""

    id: str | int | None = None
    name: str | None = None
    description: str | None = None
    quantity: Decimal | None = None
    amount: Money | None = None


class BillingDocument(PiriodModel):
    """The fields invoices and credit notes share: the customer, the money and the document's state."""

    customer: Ref | None = None
    document: int | str | None = None
    number: int | str | None = None
    currency: str | None = None
    amount: Money | None = None
    exempt: Money | None = None
    tax: Money | None = None
    tax_percent: Money | None = None
    subtotal: Money | None = None
    total: Money | None = None
    total_adjusted: Money | None = None
    retention: Money | None = None
    discount: Money | None = None
    discount_scheme: str | None = None  # "%" or "$"
    date: dt.date | None = None
    lines: list[InvoiceLine] | None = None
    references: list[Ref] | None = None
    status: str | None = None
    biller_status: str | None = None
    metadata: dict[str, Any] | None = None
    test_mode: bool | None = None
    created: dt.datetime | None = None
    updated: dt.datetime | None = None


class Invoice(BillingDocument):
    """An invoice (``inv_``). ``status`` is draft, finalized or paid; unofficial code also shows uncollectible."""

    id: str
    due_date: dt.date | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    payments: list[Ref] | None = None
    subscription: Ref | None = None
    collection_method: str | None = None
    uncollectible: TimestampOrFlag | None = None  # a timestamp in the new reference


class CreditNote(BillingDocument):
    """A credit note against an invoice; the docs' sample shows an integer id."""

    id: int | str
    invoice: Ref | None = None
    note: str | None = None
