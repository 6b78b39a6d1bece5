"""Subscriptions: a customer's recurring billing on plans."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from airflow_provider_piriod.models.base import PiriodModel, Ref, TimestampOrFlag


class Subscription(PiriodModel):
    """A subscription (``sub_``): active, paused, cancelled, finalized or needs_attention."""

    id: str
    customer: Ref | None = None
    status: str | None = None
    date_start: date | None = None
    end_date: date | None = None
    billing_cycles: int | None = None
    next_billing: date | None = None
    previous_billing: date | None = None
    lines: list[Any] | None = None
    addons: list[Any] | None = None
    coupon: Ref | None = None
    collection_scheme: str | None = None  # send_invoice or charge_payment
    paused: TimestampOrFlag | None = None
    paused_reason: str | None = None
    cancelled: TimestampOrFlag | None = None
    cancel_reason: str | None = None  # e.g. not_paid, insolvency, no_card, fraud_review_failed
    metadata: dict[str, Any] | None = None
    test_mode: bool | None = None
    created: datetime | None = None
    updated: datetime | None = None
