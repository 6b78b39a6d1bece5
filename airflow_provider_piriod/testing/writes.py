"""Piriod's writes: creates, updates, deletes and actions, answered the way Piriod (DRF) answers them.

    POST   /{resource}/                 customers, invoices, subscriptions, payments  -> 201 the object
    PATCH  /{resource}/{id}/            customers, contacts, invoices, subscriptions  -> 200 the object
    PUT    /{resource}/{id}/            the same as PATCH (the given top-level fields are replaced)
    DELETE /customers/{id}/             -> 204, the customer's status becomes ``archived`` (still readable)
    DELETE /subscriptions/{id}/         -> 204, status ``cancelled``
    POST   /invoices/{id}/finalize/     draft or pending -> finalized (a document number is given)
    POST   /subscriptions/{id}/pause/   active -> paused;  POST .../resume/: paused -> active

A method a path does not take answers 405; an unknown object or action 404; a refused body 400 with
DRF's field-error body (see :mod:`airflow_provider_piriod.testing.write_forms`). The caller
(:class:`~airflow_provider_piriod.testing.app.EmulatorApp`) has already authenticated the request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from airflow_provider_piriod.testing.moments import restamp
from airflow_provider_piriod.testing.responses import Response, json_response, not_found
from airflow_provider_piriod.testing.state import EmulatorState
from airflow_provider_piriod.testing.write_forms import (
    Invalid,
    clean,
    invoice_totals,
    new_object,
    parse_body,
)

CREATABLE = ("customers", "invoices", "subscriptions", "payments")
UPDATABLE = ("customers", "contacts", "invoices", "subscriptions")
DELETED_STATUS = {"customers": "archived", "subscriptions": "cancelled"}
#: resource -> action -> (statuses it may start from, the changes it makes, the refusal message)
ACTIONS: dict[str, dict[str, tuple[tuple[str, ...], dict[str, Any], str]]] = {
    "invoices": {
        "finalize": (("draft", "pending"), {"status": "finalized"}, "Invoice is not a draft."),
    },
    "subscriptions": {
        "pause": (("active",), {"status": "paused", "paused": True}, "Subscription is not active."),
        "resume": (
            ("paused",),
            {"status": "active", "paused": False, "paused_reason": None},
            "Subscription is not paused.",
        ),
    },
}


def allowed_methods(resource: str, segments: list[str]) -> tuple[str, ...]:
    """The methods a path takes; empty for a path that does not exist (an unknown action)."""
    if len(segments) == 3:  # /{resource}/
        return ("GET", "POST") if resource in CREATABLE else ("GET",)
    if len(segments) == 4:  # /{resource}/{id}/
        methods: tuple[str, ...] = ("GET",)
        if resource in UPDATABLE:
            methods += ("PATCH", "PUT")
        if resource in DELETED_STATUS:
            methods += ("DELETE",)
        return methods
    if len(segments) == 5 and segments[3] in ACTIONS.get(resource, {}):  # /{resource}/{id}/{action}/
        return ("POST",)
    return ()


def write(
    state: EmulatorState,
    method: str,
    resource: str,
    segments: list[str],
    body: bytes,
    workspace: str,
    test_mode: bool,
) -> Response:
    """One authenticated write to ``/{resource}/...`` (``segments`` is the path split on "/")."""
    collection = state.collection(resource)

    def exists(linked: str, object_id: Any) -> bool:
        return state.collection(linked).visible(str(object_id), workspace, test_mode)

    try:
        if len(segments) == 3:
            return _create(state, resource, parse_body(body), exists, workspace, test_mode)
        key = unquote(segments[2])
        if not collection.visible(key, workspace, test_mode):
            return not_found()
        if len(segments) == 5:
            parse_body(body)  # an action takes an empty body or a JSON object, whose fields it ignores
            return _action(state, resource, key, segments[3], workspace)
        if method == "DELETE":
            state.update(resource, key, _deletion(resource, collection.records[key]))
            return Response(204, b"", [], "application/json")
        return _update(state, resource, key, parse_body(body), exists)
    except Invalid as invalid:
        return json_response(400, invalid.errors)


def _create(
    state: EmulatorState, resource: str, data: dict[str, Any], exists: Any, workspace: str, test_mode: bool
) -> Response:
    fields = clean(resource, data, exists, creating=True)
    parent = state.collection("customers").get(fields["customer"]) if "customer" in fields else None
    record = new_object(resource, state.new_id(resource), fields, parent or {}, test_mode)
    collection = state.collection(resource)
    collection.add(record, workspace)
    _link(state, resource, record)
    state.created(resource, record, workspace)
    return json_response(201, collection.shown(record))


def _link(state: EmulatorState, resource: str, record: dict[str, Any]) -> None:
    """Keep back references true: a customer lists its subscriptions, an invoice its payments."""
    if resource == "subscriptions":
        customers = state.collections["customers"]
        customer = customers.get(record["customer"])
        if customer is not None and isinstance(customer.get("subscriptions"), list):
            customer["subscriptions"].append(record["id"])
            customers.changed(str(customer["id"]))
    elif resource == "payments" and record.get("invoice"):
        invoices = state.collections["invoices"]
        invoice = invoices.get(record["invoice"])
        if invoice is not None:
            invoice.setdefault("payments", []).append(record["id"])
            invoices.changed(str(invoice["id"]))


def _update(state: EmulatorState, resource: str, key: str, data: dict[str, Any], exists: Any) -> Response:
    record = state.collection(resource).records[key]
    fields = {name: value for name, value in clean(resource, data, exists, creating=False).items() if name in record}
    if resource == "invoices" and "lines" in fields:
        fields.update(invoice_totals(fields["lines"]))
    shown = state.update(resource, key, fields)
    if resource == "contacts":
        _sync_embedded_contact(state, record)
    return json_response(200, shown)


def _sync_embedded_contact(state: EmulatorState, contact: dict[str, Any]) -> None:
    """Customers embed their contacts: the embedded copy shows the change too."""
    customers = state.collections["customers"]
    customer = customers.get(contact.get("customer"))
    if customer is None:
        return
    for index, embedded in enumerate(customer.get("contacts") or []):
        if embedded.get("id") == contact["id"]:
            customer["contacts"][index] = {k: v for k, v in contact.items() if k in embedded or k != "test_mode"}
            customers.changed(str(customer["id"]))


def _deletion(resource: str, record: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": DELETED_STATUS[resource]}
    if resource == "subscriptions":
        now = datetime.now(timezone.utc)
        changes.update(cancelled=restamp(record.get("updated"), now), next_billing=None)
    return changes


def _action(state: EmulatorState, resource: str, key: str, action: str, workspace: str) -> Response:
    record = state.collection(resource).records[key]
    starts, changes, refusal = ACTIONS[resource][action]
    if record.get("status") not in starts:
        return json_response(400, {"non_field_errors": [refusal]})
    changes = dict(changes)
    if resource == "invoices" and record.get("number") is None:
        changes["number"] = state.next_folio(workspace, record.get("document"))
    return json_response(200, state.update(resource, key, changes))
