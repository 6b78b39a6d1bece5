"""The emulator's control API, for tests and benchmarks (no auth, loopback only, never logged).

    GET    /__emulator__/                    workspace, token, customer counts, resources served
    GET    /__emulator__/counts              records per resource: {"invoices": {"live": n, "test_mode": m}, ...}
    GET    /__emulator__/requests            request log;  DELETE clears it
    POST   /__emulator__/faults              add a fault;  DELETE clears them; GET lists them
                                             {"kind": "commit_then_drop", "method": "POST", "path": "/invoices/"}
    POST   /__emulator__/{resource}          create an object now, or later with after_seconds / after_requests
    GET    /__emulator__/{resource}          every record as stored, ?test_mode=true for test data, =any for both
    GET    /__emulator__/{resource}/{id}     one record
    PATCH  /__emulator__/{resource}/{id}     change fields now, or later with after_seconds / after_requests
    PUT    /__emulator__/latency             {"ms": 20}
    PUT    /__emulator__/rate_limit          {"per_second": 200, "burst": 20}; 0 turns it off
    POST   /__emulator__/reset               clear log, faults, pending changes, request counter, webhook log
    PUT    /__emulator__/webhooks            register a webhook (re-enables it): {"url": ..., "secret": "whsecret_...",
                                             "events": null, "retries": 3, "retry_delay": 0.5, "timeout": 6,
                                             "faults": {"bad_signature": false, "duplicate": false, "slow": 0}}
                                             GET: it, its state and every delivery attempt; DELETE: unregister
                                             (see :mod:`airflow_provider_piriod.testing.webhooks`)

``{resource}`` is any resource the API serves. A created object belongs to an existing parent (the
``customer``, ``invoice``, ``product`` or ``payment`` the body names, else a random one of the same
mode) and starts ``finalized`` (invoices, credit notes, receipts), ``succeeded`` (payments) or
``active`` (subscriptions, plans, products) unless the body says otherwise; ``"workspace"`` in the body
puts it in another workspace. A later creation answers 202 with the ``id`` it will have. Record bodies
are read with decimal numbers kept exact, so ``{"total": 123456789012345.67}`` is stored digit for digit.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl, unquote

from airflow_provider_piriod.testing.jsontext import loads
from airflow_provider_piriod.testing.resource_specs import RESOURCES
from airflow_provider_piriod.testing.responses import Response, json_response
from airflow_provider_piriod.testing.state import EmulatorState, PendingChange, TokenBucket

CONTROL_PREFIX = "/__emulator__/"
TIMING_KEYS = ("after_seconds", "after_requests")


def control(state: EmulatorState, method: str, path: str, query: bytes, body: bytes) -> Response:
    """Answer one control request; bad input is a 400 naming the problem."""
    route = path[len(CONTROL_PREFIX) :].strip("/") if path.startswith(CONTROL_PREFIX) else ""
    resource, _, object_id = route.partition("/")
    try:
        payload = (loads(body) if resource in RESOURCES else json.loads(body)) if body else {}
    except ValueError:
        return json_response(400, {"detail": "control body must be JSON"})
    try:
        if resource in RESOURCES:
            if not isinstance(payload, dict):
                return json_response(400, {"detail": "control body must be a JSON object of fields"})
            mode = dict(parse_qsl(query.decode())).get("test_mode", "false")
            test_mode = None if mode == "any" else mode == "true"
            return _records_route(state, method, resource, unquote(object_id), payload, test_mode)
        return _settings_route(state, method, route, payload)
    except (TypeError, ValueError, KeyError) as exc:
        return json_response(400, {"detail": f"{type(exc).__name__}: {exc}"})


def _settings_route(state: EmulatorState, method: str, route: str, payload: Any) -> Response:
    if route == "" and method == "GET":
        return json_response(
            200,
            {
                "workspace": state.workspace,
                "token": state.token,
                "other_workspace": state.other_workspace,
                "other_token": state.other_token,
                "customers": len(state.records()),
                "test_mode_customers": len(state.records(test_mode=True)),
                "latency_ms": state.latency * 1000,
                "requests": state.request_count,
                "resources": list(RESOURCES),
            },
        )
    if route == "counts" and method == "GET":
        return json_response(200, state.counts())
    if route == "requests":
        if method == "DELETE":
            state.requests.clear()
            return json_response(200, {"cleared": True})
        return json_response(200, list(state.requests))
    if route == "faults":
        if method == "DELETE":
            state.faults.clear()
            return json_response(200, {"cleared": True})
        if method == "POST":
            return json_response(201, asdict(state.add_fault(**payload)))
        return json_response(200, [asdict(f) for f in state.faults])
    if route == "rate_limit" and method == "PUT":
        per_second = float(payload.get("per_second") or 0)
        state.bucket = TokenBucket(per_second, payload.get("burst")) if per_second else None
        return json_response(200, {"per_second": per_second})
    if route == "latency" and method == "PUT":
        state.latency = float(payload["ms"]) / 1000.0
        return json_response(200, {"latency_ms": state.latency * 1000})
    if route == "webhooks":
        if method == "PUT":
            return json_response(200, state.webhooks.configure(payload))
        if method == "DELETE":
            state.webhooks.remove()
            return json_response(200, {"removed": True})
        if method == "GET":
            return json_response(200, state.webhooks.describe())
    if route == "reset" and method == "POST":
        state.reset()
        return json_response(200, {"reset": True})
    return json_response(404, {"detail": f"no control route {method} {CONTROL_PREFIX}{route}"})


def _records_route(
    state: EmulatorState, method: str, resource: str, object_id: str, payload: dict[str, Any], test_mode: bool | None
) -> Response:
    """Create, read and change the objects of one resource."""
    if not object_id:
        if method == "POST":
            workspace = payload.pop("workspace", None)
            if any(key in payload for key in TIMING_KEYS):
                return _schedule(state, resource, None, payload, workspace)
            return json_response(201, state.create(resource, payload, workspace=workspace))
        if method == "GET":
            return json_response(200, state.records(resource, test_mode=test_mode))
        return json_response(405, {"detail": f'Method "{method}" not allowed.'})
    collection = state.collection(resource)
    record = collection.get(object_id)
    if record is None:
        return json_response(404, {"detail": f"no {collection.spec.singular} {object_id!r}"})
    if method == "PATCH":
        if any(key in payload for key in TIMING_KEYS):
            return _schedule(state, resource, object_id, payload, None)
        return json_response(200, state.update(resource, object_id, payload))
    if method == "GET":
        return json_response(200, collection.shown(record))
    return json_response(405, {"detail": f'Method "{method}" not allowed.'})


def _schedule(
    state: EmulatorState, resource: str, object_id: str | None, payload: dict[str, Any], workspace: str | None
) -> Response:
    """Create (``object_id`` None) or change an object once a time or a request count is reached."""
    after_seconds = payload.pop("after_seconds", None)
    after_requests = payload.pop("after_requests", None)
    if object_id is None and "id" not in payload:
        payload["id"] = state.new_id(resource)
    state.schedule_change(
        PendingChange(
            resource,
            object_id,
            payload,
            due_time=None if after_seconds is None else time.monotonic() + float(after_seconds),
            due_request=None if after_requests is None else state.request_count + int(after_requests),
            workspace=workspace,
        )
    )
    return json_response(202, {"scheduled": True, "id": payload["id"]} if object_id is None else {"scheduled": True})
