"""The events PiriodEventTrigger sends and the webhook receiver records, and the one-liner a task uses to read them.

Airflow stores each trigger event on the watched asset as ``extra={"from_trigger": True, "payload": ...}``;
the webhook receiver records ``extra={"event", "object_id", "resource"}``. Airflow may fold several events
into one DAG run, so a task reads every triggering event, not the first, and an object announced by both
(a webhook and the polling backstop) is read once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def event_payload(resource: str, ids: list[Any]) -> dict[str, Any]:
    """What one event carries: small, JSON only, and enough to fetch the objects."""
    return {"resource": resource, "ids": list(ids), "count": len(ids)}


def webhook_extra(event: str, object_id: str, resource: str) -> dict[str, str]:
    """The extra of the asset event one webhook delivery records."""
    return {"event": event, "object_id": object_id, "resource": resource}


def triggering_ids(triggering_asset_events: Any, resource: str | None = None) -> list[Any]:
    """The ids of the Piriod objects behind this run, oldest event first, each once, whether a
    PiriodEventTrigger or a webhook announced them (or both).

    Pass ``context["triggering_asset_events"]`` (or ``triggering_asset_events`` as a task argument);
    ``resource`` keeps only that resource's ids when one DAG is scheduled on several watchers.
    A list of events, or of their ``extra`` dicts as the REST API returns them, works too.
    """
    ids: list[Any] = []
    seen: set[tuple[str, str]] = set()
    for payload in _payloads(triggering_asset_events):
        if resource is not None and payload["resource"] != resource:
            continue
        for object_id in payload["ids"]:
            key = (payload["resource"], str(object_id))  # invoice 5 and payment 5 are two objects
            if key not in seen:
                seen.add(key)
                ids.append(object_id)
    return ids


def _payloads(events: Any) -> Iterable[dict[str, Any]]:
    """Every Piriod payload among ``events``: a mapping asset -> events, or a flat list of events."""
    if events is None:
        return
    groups = events.values() if isinstance(events, Mapping) else [events]
    for group in groups:
        for event in group:
            extra = event.get("extra", event) if isinstance(event, Mapping) else getattr(event, "extra", None)
            payload = extra.get("payload") if isinstance(extra, Mapping) else None
            if isinstance(payload, Mapping) and _is_ours(payload):
                yield dict(payload)
            elif isinstance(extra, Mapping) and _is_webhook(extra):
                yield {"resource": extra["resource"], "ids": [extra["object_id"]], "count": 1}


def _is_ours(payload: Mapping[str, Any]) -> bool:
    """A PiriodEventTrigger payload (other triggers on the same asset send other shapes)."""
    return (
        isinstance(payload.get("resource"), str)
        and isinstance(payload.get("ids"), list)
        and payload.get("count") == len(payload["ids"])
    )


def _is_webhook(extra: Mapping[str, Any]) -> bool:
    """An asset event the webhook receiver recorded."""
    return all(isinstance(extra.get(key), str) for key in ("event", "object_id", "resource"))
