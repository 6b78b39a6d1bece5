"""Customers, their contacts, and the country/state objects embedded in them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_piriod.models.base import Money, PiriodModel


class Country(PiriodModel):
    id: str | None = None
    name: str | None = None
    code: str | None = None
    has_regulation: bool | None = None
    currencies: list[str] | None = None


class State(PiriodModel):
    id: int | str | None = None
    name: str | None = None
    country: str | None = None


class Contact(PiriodModel):
    id: str | None = None
    customer: str | None = None
    orgunit: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    invoicing: bool | None = None
    collections: bool | None = None
    created: datetime | None = None
    updated: datetime | None = None


class Aggregations(PiriodModel):
    sales: Money | None = None
    sales_current_period: Money | None = None
    balance: Money | None = None


class Customer(PiriodModel):
    id: str
    name: str | None = None
    address: str | None = None
    # older docs send a bare country/state code instead of the object
    country: Country | str | None = None
    state: State | str | int | None = None
    currency: str | None = None
    email: str | None = None
    phone: str | None = None
    website: str | None = None
    zip_code: str | None = None
    manager: str | None = None
    reference: str | None = None
    tax_id: str | None = None
    tax_settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    send_invoices: bool | None = None
    send_collections: bool | None = None
    send_vouchers: bool | None = None
    status: str | None = None
    contacts: list[Contact] | None = None
    sources: list[Any] | None = None
    aggregations: Aggregations | None = None
    test_mode: bool | None = None
    created: datetime | None = None
    updated: datetime | None = None


class CustomerPage(PiriodModel):
    """One page of ``GET /customers/``: Piriod's ``count``/``next``/``previous``/``results`` envelope."""

    count: int
    next: str | None = None
    previous: str | None = None
    results: list[Customer]
