"""Payments received against invoices."""

from __future__ import annotations

import datetime as dt  # the module, because a field is named ``date``
from typing import Any

from airflow_provider_piriod.models.base import Money, PiriodModel, Ref


class Payment(PiriodModel):
    """A payment (``pay_`` ids in the old docs, an integer in a new-docs sample).

    ``status`` is one of requires_payment_method, processing, succeeded, failed, incomplete and cancelled
    (the old docs spell it canceled).
    """

    id: int | str
    amount: Money | None = None
    currency: str | None = None
    date: dt.date | None = None
    description: str | None = None
    invoice: Ref | None = None
    subscription: Ref | None = None
    customer: Ref | None = None
    balance: Money | None = None
    payment_date: dt.datetime | None = None
    source: Ref | None = None
    sources: list[Ref] | None = None
    failed_reason: str | dict[str, Any] | None = None
    status: str | None = None
    metadata: dict[str, Any] | None = None
    test_mode: bool | None = None
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
