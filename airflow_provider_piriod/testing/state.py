"""Everything the emulator knows: the records of two workspaces, faults, scheduled changes and the request log.

Customers (and the contacts they embed) are generated at start. The billing resources (products,
plans, subscriptions, invoices, payments, credit notes, payment receipts) are generated on first use,
from the customers as they were seeded, so the result is the same whenever that happens and a
customers-only benchmark with 100 000 customers starts as fast as before.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from airflow_provider_piriod.testing.billing_data import (
    make_billing,
    make_credit_note,
    make_invoice,
    make_payment,
    make_receipt,
)
from airflow_provider_piriod.testing.catalog_data import make_plan, make_product, make_subscription, pick_plans
from airflow_provider_piriod.testing.data import isoformat, make_contact, make_customer, make_customers, make_id
from airflow_provider_piriod.testing.faults import DEFAULT_STATUS, FAULT_KINDS, Fault
from airflow_provider_piriod.testing.mint import Mint, country_of
from airflow_provider_piriod.testing.moments import restamp
from airflow_provider_piriod.testing.resource_specs import BILLING_RESOURCES, RESOURCES
from airflow_provider_piriod.testing.store import Collection
from airflow_provider_piriod.testing.webhooks import WebhookSender

DEFAULT_PRODUCTS = 6
DEFAULT_INVOICES_PER_CUSTOMER = 3
FOREIGN_CUSTOMERS = 5
# The status an object created through the control API starts in, unless the fields say otherwise.
NEW_OBJECT_STATUS = {
    "invoices": "finalized",
    "payments": "succeeded",
    "subscriptions": "active",
    "creditnotes": "finalized",
    "payment-receipts": "finalized",
}
# What a created object falls back to when the parent it names does not exist.
STAND_INS: dict[str, dict[str, Any]] = {
    "customers": {"currency": "CLP", "status": "active"},
    "invoices": {"currency": "CLP", "total": Decimal(0), "subtotal": Decimal(0), "lines": [], "customer": None},
    "payments": {"currency": "CLP", "amount": Decimal(0), "customer": None, "date": None},
    "products": {"status": "active"},
}
PARENT = {
    "contacts": ("customers", "customer"),
    "invoices": ("customers", "customer"),
    "subscriptions": ("customers", "customer"),
    "payments": ("invoices", "invoice"),
    "creditnotes": ("invoices", "invoice"),
    "plans": ("products", "product"),
    "payment-receipts": ("payments", "payment"),
}
SNAPSHOT_FIELDS = ("id", "name", "email", "currency", "country", "status", "sources", "test_mode", "created")


@dataclass
class PendingChange:
    resource: str
    object_id: str | None  # None: create an object of ``resource`` with ``fields``
    fields: dict[str, Any]
    due_time: float | None = None
    due_request: int | None = None
    workspace: str | None = None

    def is_due(self, number: int, now: float) -> bool:
        return (self.due_time is not None and now >= self.due_time) or (
            self.due_request is not None and number >= self.due_request
        )


@dataclass
class TokenBucket:
    """``rate`` requests per second with bursts up to ``burst``; beyond that, 429 with Retry-After.

    Retry-After is the time until the next token, in seconds with millisecond precision (Piriod
    documents no rate limit; fractional values let clients pace themselves precisely).
    """

    rate: float
    burst: float | None = None
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.rate = float(self.rate)
        self.burst = float(self.burst) if self.burst else max(1.0, self.rate / 10)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 if the request may pass, else seconds until it could."""
        now = time.monotonic()
        assert self.burst is not None  # set by __post_init__
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class EmulatorState:
    """Records of two workspaces (yours and a foreign one), faults, scheduled changes and the request log."""

    def __init__(
        self,
        *,
        customers: int = 100,
        seed: int = 0,
        token: str = "",
        workspace: str = "",
        latency_ms: float = 0.0,
        rate_limit: float = 0.0,
        log_size: int = 100_000,
        products: int = DEFAULT_PRODUCTS,
        invoices_per_customer: int = DEFAULT_INVOICES_PER_CUSTOMER,
    ) -> None:
        rng = random.Random(f"workspace-{seed}")
        self.token = token or "sk_test_" + make_id(rng, "")
        self.workspace = workspace or make_id(rng, "acc_")
        self.other_token = "sk_test_" + make_id(rng, "other")
        self.other_workspace = make_id(rng, "acc_")
        self.latency = latency_ms / 1000.0
        self.bucket = TokenBucket(rate_limit) if rate_limit else None
        self.request_count = 0
        self.requests: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.faults: list[Fault] = []
        self.pending: list[PendingChange] = []
        self.webhooks = WebhookSender()
        self._fault_ids = 0
        self._seed = seed
        self._products = products
        self._invoices_per_customer = invoices_per_customer
        self._rng = random.Random(f"later-{seed}")
        self._integer_ids: dict[str, Iterator[int]] = {
            "creditnotes": itertools.count(1),
            "payment-receipts": itertools.count(1),
        }
        self._mints: dict[str, Mint] = {}
        self.collections = {name: Collection(spec) for name, spec in RESOURCES.items()}
        self.collections["products"].expand = self._with_plans
        self._records = self.collections["customers"].records  # the customers by id, as older callers knew them
        self._unbilled: list[tuple[str, list[dict[str, Any]]]] | None = []
        for owner, seed_value, count in (
            (self.workspace, seed, customers),
            (self.other_workspace, seed + 1_000_003, FOREIGN_CUSTOMERS),
        ):
            group = make_customers(count, seed_value)
            for record in group:
                self._add_customer(record, owner)
            self._unbilled.append((owner, [{k: r.get(k) for k in SNAPSHOT_FIELDS} for r in group]))

    # ------------------------------------------------------------------ records

    def collection(self, resource: str) -> Collection:
        """The records of ``resource`` (KeyError if unknown), generating billing data on first use."""
        if self._unbilled is not None and resource in BILLING_RESOURCES:
            self._generate_billing()
        return self.collections[resource]

    def _generate_billing(self) -> None:
        unbilled, self._unbilled = self._unbilled or [], None
        for index, (owner, customers) in enumerate(unbilled):
            mint = self._mints[owner] = Mint(random.Random(f"billing-{self._seed}-{index}"), self._integer_ids)
            made = make_billing(
                mint,
                customers,
                products=self._products,
                invoices_per_customer=self._invoices_per_customer,
                big_total=owner == self.workspace,
            )
            for resource, records in made.items():
                for record in records:
                    self.collections[resource].add(record, owner)

    def _add_customer(self, record: dict[str, Any], workspace: str) -> None:
        """A customer, and its embedded contacts as records of the contacts resource."""
        self.collections["customers"].add(record, workspace)
        for contact in record.get("contacts") or []:
            self.collections["contacts"].add(dict(contact, test_mode=record.get("test_mode", False)), workspace)

    def _with_plans(self, product: dict[str, Any]) -> dict[str, Any]:
        plans = self.collections["plans"].records.values()
        return dict(product, plans=[plan for plan in plans if plan.get("product") == product["id"]])

    def record_json(self, customer_id: str) -> bytes:
        return self.collections["customers"].record_json(customer_id)

    def records(
        self, resource: str = "customers", *, workspace: str | None = None, test_mode: bool | None = False
    ) -> list[dict[str, Any]]:
        """Every record of ``resource`` in a workspace and mode (both modes when None), in creation order."""
        collection = self.collection(resource)
        modes = (False, True) if test_mode is None else (test_mode,)
        owner = workspace or self.workspace
        return [
            collection.shown(r)
            for k, r in collection.records.items()
            if collection.owner[k] == owner and r.get("test_mode") in modes
        ]

    def next_folio(self, workspace: str, document: Any) -> int:
        """The next document number of ``document`` in ``workspace`` (an invoice being finalized)."""
        return self._mint(workspace).folio(document)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "live": len(self.collection(name).of(self.workspace, False)),
                "test_mode": len(self.collection(name).of(self.workspace, True)),
            }
            for name in RESOURCES
        }

    def create_customer(self, fields: dict[str, Any], *, workspace: str | None = None) -> dict[str, Any]:
        """A new customer created now (as a signup flow would), with ``fields`` laid over generated data."""
        now = datetime.now(timezone.utc)
        record = make_customer(self._rng, test_mode=bool(fields.get("test_mode", False)), created=now)
        record["updated"] = isoformat(now)
        record.update(fields)
        if "contacts" not in fields:
            for contact in record["contacts"]:
                contact["customer"] = record["id"]
        self._add_customer(record, workspace or self.workspace)
        self.created("customers", record, workspace)
        return record

    def update_customer(self, customer_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.update("customers", customer_id, fields)

    def create(self, resource: str, fields: dict[str, Any], *, workspace: str | None = None) -> dict[str, Any]:
        """A new object of ``resource`` created now, tied to existing parents, with ``fields`` laid over it."""
        if resource == "customers":
            return self.create_customer(fields, workspace=workspace)
        collection = self.collection(resource)
        workspace = workspace or self.workspace
        record = self._new_object(resource, fields, workspace)
        record.update(fields)
        collection.add(record, workspace)
        self._link_new(resource, record)
        self.created(resource, record, workspace)
        return collection.shown(record)

    def created(self, resource: str, record: dict[str, Any], workspace: str | None = None) -> None:
        """An object was just created (API or control API): a webhook delivery, for this workspace's objects."""
        if (workspace or self.workspace) == self.workspace:
            self.webhooks.created(resource, record["id"])

    def update(self, resource: str, object_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
        """Change fields of one object now; ``updated`` moves to now (in the record's own timestamp shape)."""
        collection = self.collection(resource)
        key = str(object_id)
        record = collection.records[key]
        record.update(fields)
        if "updated" not in fields:
            record["updated"] = restamp(record.get("updated"), datetime.now(timezone.utc))
        collection.changed(key)
        if resource == "plans":
            self.collections["products"].changed()
        return collection.shown(record)

    def new_id(self, resource: str) -> Any:
        """An id for an object to be created later, so a test can wait for it by id."""
        spec = self.collection(resource).spec
        return make_id(self._rng, spec.id_prefix) if spec.id_prefix else next(self._integer_ids[resource])

    # ------------------------------------------------------------------ objects created through the control API

    def _new_object(self, resource: str, fields: dict[str, Any], workspace: str) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        mint = self._mint(workspace)
        status = fields.get("status", NEW_OBJECT_STATUS.get(resource))
        parent = self._parent(resource, fields, workspace)
        if resource == "contacts":
            return dict(make_contact(self._rng, parent, now), test_mode=bool(parent.get("test_mode")))
        if resource == "products":
            index = len(self.collections["products"].records)
            product = make_product(mint, index, now, test_mode=bool(fields.get("test_mode", False)))
            return dict(product, status=fields.get("status", "active"))
        if resource == "plans":
            plan = make_plan(mint, parent, str(fields.get("currency", "CLP")), now)
            return dict(plan, status=fields.get("status", "active"))
        if resource == "subscriptions":
            plans = [p for p in self.collections["plans"].of(workspace, bool(parent.get("test_mode")))]
            chosen = pick_plans(mint, plans, parent.get("currency") or "CLP")
            return make_subscription(mint, parent, chosen, now, status=status)
        if resource == "invoices":
            return make_invoice(mint, parent, now, status=status)
        if resource == "payments":
            customer = self.collections["customers"].get(parent.get("customer")) or {}
            return make_payment(mint, parent, customer, now, status=status)
        if resource == "creditnotes":
            return make_credit_note(mint, parent, now, status=status)
        return make_receipt(mint, parent, now, status=status)  # payment-receipts

    def _mint(self, workspace: str) -> Mint:
        if workspace not in self._mints:
            self._mints[workspace] = Mint(random.Random(f"later-{self._seed}-{workspace}"), self._integer_ids)
        return self._mints[workspace]

    def _parent(self, resource: str, fields: dict[str, Any], workspace: str) -> dict[str, Any]:
        """The object a new one belongs to: the one ``fields`` names, else a random one of the same mode."""
        if resource not in PARENT:
            return {}
        parent_resource, link = PARENT[resource]
        test_mode = bool(fields.get("test_mode", False))
        parents = self.collection(parent_resource)
        if fields.get(link) is not None:
            found = parents.get(fields[link])
        else:
            candidates = parents.of(workspace, test_mode)
            found = self._rng.choice(candidates) if candidates else None
        if found is not None:
            return found
        stand_in = dict(STAND_INS[parent_resource], id=fields.get(link), test_mode=test_mode)
        return dict(stand_in, country=country_of(None)) if parent_resource == "customers" else stand_in

    def _link_new(self, resource: str, record: dict[str, Any]) -> None:
        """Keep back references true: an invoice lists its payments, a product shows its plans."""
        if resource == "payments":
            invoices = self.collections["invoices"]
            invoice = invoices.get(record.get("invoice"))
            if invoice is not None and record["id"] not in invoice.setdefault("payments", []):
                invoice["payments"].append(record["id"])
                invoices.changed(str(invoice["id"]))
        elif resource == "plans":
            self.collections["products"].changed()

    # ------------------------------------------------------------------ faults and scheduled changes

    def add_fault(self, **spec: Any) -> Fault:
        if spec.get("kind") not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {spec.get('kind')!r}; choose from {', '.join(FAULT_KINDS)}")
        if "status" not in spec and spec["kind"] in DEFAULT_STATUS:
            spec["status"] = DEFAULT_STATUS[spec["kind"]]
        self._fault_ids += 1
        fault = Fault(**spec, id=self._fault_ids)
        self.faults.append(fault)
        return fault

    def take_fault(self, number: int, path: str, query: str = "", method: str | None = None) -> Fault | None:
        for fault in self.faults:
            if fault.matches(number, path, query, method):
                fault.hits += 1
                return fault
        return None

    def schedule_change(self, change: PendingChange) -> None:
        collection = self.collection(change.resource)
        if change.object_id is not None and collection.get(change.object_id) is None:
            raise KeyError(change.object_id)
        self.pending.append(change)

    def apply_due_changes(self, number: int) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        for change in [c for c in self.pending if c.is_due(number, now)]:
            self.pending.remove(change)
            if change.object_id is None:
                self.create(change.resource, dict(change.fields), workspace=change.workspace)
            else:
                self.update(change.resource, change.object_id, change.fields)

    def reset(self) -> None:
        self.request_count = 0
        self.requests.clear()
        self.faults.clear()
        self.pending.clear()
        self.webhooks.reset()
