"""The catalog: products and the plans (prices) that live inside them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_piriod.models.base import Money, PiriodModel, Ref


class Plan(PiriodModel):
    """A price of a product (``pla_``): amount and currency per ``frequency``, active or archived."""

    id: str
    name: str | None = None
    product: Ref | None = None
    amount: Money | None = None
    currency: str | None = None
    frequency: str | None = None  # monthly, annual, weekly, biannual, quarterly
    usage_scheme: str | None = None  # licensed, metered
    usage_aggregation: str | None = None  # sum, max, last_record
    tiers_mode: str | None = None
    tiers: list[Any] | None = None
    sku: str | None = None
    exempt: bool | Money | None = None  # a tax-exemption flag here; invoices use the name for an amount
    unit_label: str | None = None
    status: str | None = None
    metadata: dict[str, Any] | None = None
    test_mode: bool | None = None
    created: datetime | None = None
    updated: datetime | None = None


class Product(PiriodModel):
    """A product (``pro_``), active or archived, with its plans embedded."""

    id: str
    name: str | None = None
    description: str | None = None
    plans: list[Plan | str | int] | None = None
    status: str | None = None
    metadata: dict[str, Any] | None = None
    test_mode: bool | None = None
    created: datetime | None = None
    updated: datetime | None = None
