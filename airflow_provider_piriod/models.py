"""Typed, read-only views of Piriod objects.

Models are lenient on read: unknown fields are kept, nullable fields may be missing or null, and
types the two generations of Piriod docs disagree on are accepted both ways (``state.id`` int or
str). Money is :class:`~decimal.Decimal`. Each model also keeps the JSON it was built from, and
``to_json()`` gives exactly that back (same keys, numbers stay numbers, nothing added): that is
what operators push to XCom.
"""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr


class PiriodModel(BaseModel):
    """Immutable model that remembers the JSON object it came from."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        """Build the model from an API object and keep that object for :meth:`to_json`."""
        model = cls.model_validate(data)
        model._raw = data
        return model

    def to_json(self) -> dict[str, Any]:
        """The object exactly as Piriod sent it (a copy, safe to change)."""
        if not self._raw:
            return self.model_dump(mode="json", exclude_unset=True)
        return copy.deepcopy(self._raw)


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
    sales: Decimal | None = None
    sales_current_period: Decimal | None = None
    balance: Decimal | None = None


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

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        page = cls.model_validate({**data, "results": [Customer.from_json(item) for item in data["results"]]})
        page._raw = data
        return page
