"""The resource registry: the one place a Piriod resource is described.

Each entry says where the resource lives (``/<name>/``), what its ids look like, which model reads
it, which statuses Piriod documents for it and which of them end a sensor's wait with a failure.
Names are those of Piriod's own node SDK, plus ``payment-receipts`` from the newer API reference.
It also says which writes a resource accepts (``create``, ``update``, ``archive``) and which actions,
with the statuses that show an action done. Adding a resource is one entry here; every hook, operator
and sensor then accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_piriod.exceptions import PiriodInputError


@dataclass(frozen=True)
class Action:
    """``POST /<name>/<id>/<action>/`` (or a DELETE on the object), done once the object has a ``done`` status."""

    name: str
    done: tuple[str, ...]
    method: str = "POST"

    def path(self, object_path: str) -> str:
        return object_path if self.method == "DELETE" else f"{object_path}{self.name}/"


#: what each write is sent as
WRITE_METHODS = {"create": "POST", "update": "PATCH", "archive": "DELETE"}


@dataclass(frozen=True)
class Resource:
    """A Piriod API resource: ``GET /<name>/`` lists it, ``GET /<name>/<id>/`` retrieves one."""

    name: str
    #: name of the model class in :mod:`airflow_provider_piriod.models` (resolved lazily: models load pydantic)
    model_name: str = "PiriodObject"
    id_prefix: str | None = None
    statuses: tuple[str, ...] = ()
    fail_statuses: tuple[str, ...] = ()
    #: filters Piriod documents for the list endpoint (others are passed through: Piriod may know more)
    filters: tuple[str, ...] = ()
    #: the docs show integer ids for this resource
    integer_ids: bool = False
    #: the writes Piriod documents for it: ``create`` (only where objects carry ``metadata``, which holds the
    #: write key that makes a create exactly-once), ``update`` (PATCH), ``archive`` (DELETE)
    writes: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()

    def action(self, name: Any) -> Action:
        """The registered action ``name``; anything else is refused before any request."""
        for action in self.actions:
            if action.name == name:
                return action
        known = ", ".join(a.name for a in self.actions) or "none"
        raise PiriodInputError(f"{self.name} has no action {str(name)[:40]!r} (actions Piriod documents: {known})")

    def check_write(self, write: str) -> None:
        """Refuse, before any request, a write Piriod does not document for this resource."""
        if write not in self.writes:
            accepted = ", ".join(self.writes) or "none: it is read-only here"
            raise PiriodInputError(f"{self.name} does not accept {write} (writes it accepts: {accepted})")

    @property
    def path(self) -> str:
        return f"/{self.name}/"

    @property
    def label(self) -> str:
        """How messages name one object: ``invoice``, ``payment receipt``."""
        return _LABELS.get(self.name, self.name.rstrip("s").replace("-", " ").replace("/", " "))

    @property
    def model(self) -> Any:
        from airflow_provider_piriod import models

        return getattr(models, self.model_name)

    def object_path(self, object_id: str) -> str:
        """``/<name>/<id>/`` with every reserved character of the (already validated) id percent-encoded."""
        return f"{self.path}{quote(object_id, safe='')}/"


_LABELS = {"creditnotes": "credit note", "debitnotes": "debit note", "addons": "add-on"}

_CREATED = ("created__gte", "created__lte")
_GENERIC = ("status", "status__in", "ordering", "search", *_CREATED)

RESOURCES: dict[str, Resource] = {
    resource.name: resource
    for resource in (
        Resource(
            "customers",
            "Customer",
            "cus_",
            ("active", "archived", "pending"),
            ("archived",),
            ("country", "email", "name", "tax_id", "subscriptions", "sources", *_GENERIC),
            writes=("create", "update", "archive"),
        ),
        Resource(
            "contacts",
            "Contact",
            "con_",
            filters=(
                "customer",
                "orgunit",
                "name",
                "email",
                "invoicing",
                "collections",
                "ordering",
                "search",
                *_CREATED,
            ),
            writes=("update",),  # no metadata documented: a create could not be made exactly-once
        ),
        Resource(
            "invoices",
            "Invoice",
            "inv_",
            ("draft", "finalized", "paid", "uncollectible"),
            ("uncollectible",),
            (
                "customer",
                "subscription",
                "document",
                "number",
                "collection_method",
                "date__gte",
                "date__lte",
                "due_date__gte",
                "due_date__lte",
                *_GENERIC,
            ),
            writes=("create", "update"),
            actions=(Action("finalize", ("finalized", "paid")),),
        ),
        Resource(
            "payments",
            "Payment",
            "pay_",
            ("requires_payment_method", "processing", "succeeded", "failed", "incomplete", "cancelled", "canceled"),
            ("failed", "cancelled", "canceled"),
            ("customer", "invoice", "subscription", "date__gte", "date__lte", *_GENERIC),
            integer_ids=True,
            writes=("create",),
        ),
        Resource(
            "subscriptions",
            "Subscription",
            "sub_",
            ("active", "paused", "cancelled", "finalized", "needs_attention"),
            ("cancelled", "finalized"),
            ("customer", "plan", "next_billing", "date_start", "document", *_GENERIC),
            writes=("create", "update"),
            actions=(
                Action("pause", ("paused",)),
                Action("resume", ("active",)),
                Action("cancel", ("cancelled",), method="DELETE"),  # Piriod cancels on DELETE
            ),
        ),
        Resource(
            "creditnotes",
            "CreditNote",
            None,
            ("draft", "finalized", "cancelled"),
            ("cancelled",),
            ("invoice", "document", "number", "date", "note", "date__gte", "date__lte", *_GENERIC),
            integer_ids=True,
        ),
        Resource("plans", "Plan", "pla_", ("active", "archived"), ("archived",), ("product", *_GENERIC)),
        Resource("products", "Product", "pro_", ("active", "archived"), ("archived",), _GENERIC),
        Resource(
            "payment-receipts",
            statuses=("draft", "finalized"),
            filters=("sources", "biller_status", *_GENERIC),
            integer_ids=True,
        ),
        *(
            Resource(name)
            for name in (
                "addons",
                "banks",
                "billers/built_in",
                "bulks/invoices",
                "bulks/retentions",
                "coupons",
                "debitnotes",
                "ops",
                "orders",
                "orgunits",
                "reminders/pendings",
                "reminders/messages",
                "reminders/templates",
                "reminders/rules",
                "retentions",
                "sources",
                "usages",
            )
        ),
    )
}


def get_resource(name: Any) -> Resource:
    """The registry entry for ``name``; anything else is refused before a request can be built from it."""
    resource = RESOURCES.get(name) if isinstance(name, str) else None
    if resource is None:
        raise PiriodInputError(
            f"resource must be one of the Piriod resources {', '.join(sorted(RESOURCES))}; got {str(name)[:60]!r}"
        )
    return resource


#: the object named before the dot of a webhook event (``payment.created`` -> payments). Piriod documents only
#: ``payment.created``; the other names follow its pattern and the resource names (see the README)
EVENT_OBJECTS = {
    "customer": "customers",
    "contact": "contacts",
    "invoice": "invoices",
    "payment": "payments",
    "subscription": "subscriptions",
    "creditnote": "creditnotes",
    "credit_note": "creditnotes",
    "plan": "plans",
    "product": "products",
}


#: what can follow the dot. A closed list, none the start of another: the signature covers the values
#: concatenated, so ``payment.created`` + ``pay_1`` and ``payment.createdpay`` + ``_1`` sign alike, and only
#: one of such splits may name a known event
EVENT_ACTIONS = frozenset(
    ("created", "updated", "deleted", "archived", "finalized", "paid", "paused", "resumed", "cancelled",
     "succeeded", "failed", "uncollectible")
)  # fmt: skip


def resource_for_event(event: str) -> Resource | None:
    """The resource a webhook event is about, or None for an event name the registry does not know."""
    obj, dot, action = event.partition(".")
    name = EVENT_OBJECTS.get(obj) if dot and action in EVENT_ACTIONS else None
    return RESOURCES[name] if name else None
