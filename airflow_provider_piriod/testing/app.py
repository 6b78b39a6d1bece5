"""The emulator's ASGI application: Piriod's API for every typed resource, plus a control API for tests.

Written directly against ASGI (served by uvicorn) rather than through a web framework, because
the faults it must produce live below what frameworks expose: a connection dropped half-way
through a body, a body trickled byte by byte, a Content-Length that lies.

API (Piriod semantics, see the project README), for each of customers, contacts, invoices,
payments, subscriptions, creditnotes, plans, products and payment-receipts:
    GET /{resource}/              page/page_size, filters, ordering, search
    GET /{resource}/{id}/         one object
    and the writes of :mod:`airflow_provider_piriod.testing.writes` (POST, PATCH, PUT, DELETE, actions)
Any other path answers 404 ``{"detail": "Not found."}``; a method a path does not take, 405. Writes pass
through the same request log, faults, rate limit and authentication as reads. The control API is
described in :mod:`airflow_provider_piriod.testing.control`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode

from airflow_provider_piriod.testing.control import CONTROL_PREFIX, control
from airflow_provider_piriod.testing.faults import (
    COMMIT_KINDS,
    FAULT_KINDS,
    REPLACING_KINDS,
    DropConnection,
    Fault,
    fault_response,
    hang_up,
    rewrite,
    send_dropped,
    send_late,
    send_slowly,
)
from airflow_provider_piriod.testing.responses import Response, json_response, not_found, read_body, send_response
from airflow_provider_piriod.testing.state import EmulatorState, PendingChange, TokenBucket
from airflow_provider_piriod.testing.store import Collection, InvalidFilter
from airflow_provider_piriod.testing.writes import allowed_methods, write

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_PAGE_SIZE",
    "FAULT_KINDS",
    "MAX_PAGE_SIZE",
    "DropConnection",
    "EmulatorApp",
    "EmulatorState",
    "Fault",
    "PendingChange",
    "Response",
    "TokenBucket",
    "json_response",
]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class EmulatorApp:
    """ASGI callable serving :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith(CONTROL_PREFIX) or path == CONTROL_PREFIX.rstrip("/"):
            body = await read_body(receive)
            await send_response(send, control(self.state, scope["method"], path, scope.get("query_string", b""), body))
            return
        await self._api(scope, receive, send)

    async def _api(self, scope: dict, receive: Callable, send: Callable) -> None:
        """One API request: count it, log it, wait the latency, then a fault, a 429 or the real answer."""
        state = self.state
        method = scope["method"]
        body = await read_body(receive)
        state.request_count += 1
        number = state.request_count
        state.apply_due_changes(number)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry = _log_entry(number, method, path, query, headers, state.token)
        entry["body"] = body.decode("utf-8", "replace")
        state.requests.append(entry)
        if state.latency:
            await asyncio.sleep(state.latency)
        fault = state.take_fault(number, path, query, method)
        wait = state.bucket.take() if state.bucket and not fault else 0.0
        if wait:
            fault = Fault("status", status=429, retry_after=f"{max(wait, 0.001):.3f}")
        entry["fault"] = fault.kind if fault else None
        if fault and fault.kind in REPLACING_KINDS:
            response = fault_response(fault, path, query)
        else:
            response = self._handle(method, path, query, headers, body)
            if fault and fault.kind in COMMIT_KINDS:
                entry["served"] = response.status  # what the request did before its answer was lost
                if fault.kind == "commit_then_status":
                    response = fault_response(fault, path, query)
            elif fault:
                response = rewrite(fault, response, path, query, headers.get("host", ""))
        entry["status"] = response.status
        kind = fault.kind if fault else None
        if kind == "drop":
            await send_dropped(send, response)
        elif fault and kind == "slow_body":
            await send_slowly(send, receive, response, fault)
        elif kind == "commit_then_drop":
            entry["status"] = None  # no answer was sent
            await hang_up(send, receive)
        elif fault and kind == "commit_then_slow":
            await send_late(send, receive, response, fault)
        else:
            await send_response(send, response)

    def _handle(self, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes = b"") -> Response:
        """Route like Django REST Framework: unknown paths 404 before authentication, then 401/403, then 405."""
        segments = raw_path.split("/")
        resource = segments[1] if len(segments) > 1 else ""
        if resource not in self.state.collections:
            return not_found()
        if not raw_path.endswith("/"):
            location = f"http://{headers.get('host', '')}{raw_path}/" + (f"?{query}" if query else "")
            return json_response(301, {}, [("Location", location)])
        denied = _authenticate(headers, self.state)
        if denied:
            return denied
        methods = allowed_methods(resource, segments)
        if not methods:
            return not_found()
        if method not in methods:
            return json_response(405, {"detail": f'Method "{method}" not allowed.'}, [("Allow", ", ".join(methods))])
        workspace = headers["x-simple-workspace"].strip()
        test_mode = headers.get("x-piriod-test-mode", "false").strip().lower() in ("true", "1")
        if method != "GET":
            return write(self.state, method, resource, segments, body, workspace, test_mode)
        collection = self.state.collection(resource)
        if len(segments) == 3:  # /{resource}/
            return _list(collection, resource, workspace, test_mode, query, headers)
        if len(segments) == 4:  # /{resource}/{id}/
            key = unquote(segments[2])
            if collection.visible(key, workspace, test_mode):
                return Response(200, collection.record_json(key))
        return not_found()


def _list(
    collection: Collection, resource: str, workspace: str, test_mode: bool, query: str, headers: dict[str, str]
) -> Response:
    """One page of a listing in the DRF envelope, with absolute ``next``/``previous`` links."""
    params = parse_qsl(query, keep_blank_values=True)
    try:
        keys = collection.listing(workspace, test_mode, params)
    except InvalidFilter as invalid:
        return json_response(400, invalid.body)
    values = dict(params)
    page_size = _page_size(values.get("page_size"))
    pages = max(1, -(-len(keys) // page_size))
    page = pages if values.get("page") == "last" else _positive_int(values.get("page", "1"))
    if page is None or page > pages:
        return json_response(404, {"detail": "Invalid page."})
    base = f"http://{headers.get('host', '')}/{resource}/"
    chunk = keys[(page - 1) * page_size : page * page_size]
    head = {
        "count": len(keys),
        "next": _page_url(base, params, page + 1) if page < pages else None,
        "previous": _page_url(base, params, page - 1) if page > 1 else None,
    }
    body = (
        json.dumps(head)[:-1].encode()
        + b', "results": ['
        + b", ".join(collection.record_json(k) for k in chunk)
        + b"]}"
    )
    return Response(200, body)


def _authenticate(headers: dict[str, str], state: EmulatorState) -> Response | None:
    """Piriod's order: token (401), then workspace header (400), then membership (403)."""
    authorization = headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "token":
        return json_response(
            401, {"detail": "Authentication credentials were not provided."}, [("WWW-Authenticate", "Token")]
        )
    credential = credential.strip()
    if not credential:
        return json_response(
            401, {"detail": "Invalid token header. No credentials provided."}, [("WWW-Authenticate", "Token")]
        )
    members = {state.token: state.workspace, state.other_token: state.other_workspace}
    if credential not in members:
        return json_response(401, {"detail": "Invalid token."}, [("WWW-Authenticate", "Token")])
    workspace = headers.get("x-simple-workspace", "").strip()
    if not workspace:
        return json_response(400, {"non_field_errors": ["The x-simple-workspace header is required."]})
    if members[credential] != workspace:
        return json_response(403, {"detail": "You do not have permission to perform this action."})
    return None


def _log_entry(number: int, method: str, path: str, query: str, headers: dict[str, str], token: str) -> dict:
    shown = dict(headers)
    if "authorization" in shown:
        scheme, _, credential = shown["authorization"].partition(" ")
        shown["authorization"] = f"{scheme} ***" if credential else "***"
    return {
        "n": number,
        "time": time.time(),
        "method": method,
        "path": path,
        "query": query,
        "params": parse_qsl(query, keep_blank_values=True),
        "headers": shown,
        "token_valid": headers.get("authorization", "") == f"Token {token}",
        "status": None,
        "fault": None,
    }


def _page_size(value: str | None) -> int:
    size = _positive_int(value) if value is not None else None
    return DEFAULT_PAGE_SIZE if size is None else min(size, MAX_PAGE_SIZE)


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number > 0 else None


def _page_url(base: str, params: list[tuple[str, str]], page: int) -> str:
    """DRF's replace/remove_query_param: other parameters kept, sorted; page 1 drops ``page``."""
    kept = [(k, v) for k, v in params if k != "page"]
    if page > 1:
        kept.append(("page", str(page)))
    query = urlencode(sorted(kept), quote_via=quote)
    return f"{base}?{query}" if query else base


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
