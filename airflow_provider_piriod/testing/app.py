"""The emulator's ASGI application: Piriod's customers API plus a control API for tests.

Written directly against ASGI (served by uvicorn) rather than through a web framework, because
the faults it must produce live below what frameworks expose: a connection dropped half-way
through a body, a body trickled byte by byte, a Content-Length that lies.

API (Piriod semantics, see the project README):
    GET /customers/              page/page_size, filters, ordering, search
    GET /customers/{id}/         one customer
Control (no auth, loopback only, never logged):
    GET    /__emulator__/                  workspace, token, counts
    GET    /__emulator__/requests          request log;  DELETE clears it
    POST   /__emulator__/faults            add a fault;  DELETE clears them
    POST   /__emulator__/customers         create a customer (now, or after_seconds / after_requests)
    GET    /__emulator__/customers         every record (raw JSON), ?test_mode=true for test data
    GET    /__emulator__/customers/{id}    one record
    PATCH  /__emulator__/customers/{id}    change fields now or later (after_seconds / after_requests)
    PUT    /__emulator__/latency           {"ms": 20}
    PUT    /__emulator__/rate_limit        {"per_second": 200, "burst": 20}; 0 turns it off
    POST   /__emulator__/reset             clear log, faults, pending changes and the request counter
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode

from airflow_provider_piriod.testing.data import isoformat, make_customer, make_customers, make_id

CONTROL_PREFIX = "/__emulator__/"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
FAULT_KINDS = (
    "status",          # answer with `status` (429 with Retry-After, 5xx with an HTML body, or any code)
    "drop",            # send half the body, then close the connection
    "slow_body",       # trickle the body one byte every `chunk_delay` s (gives up after `seconds`)
    "truncated_json",  # 200 with the first half of the real JSON, well framed
    "invalid_json",    # 200 with an HTML body
    "non_object",      # 200 with a JSON list instead of an object
    "missing_results", # list page without its `results` key
    "next_host",       # list page whose `next` points at another host (`host`, default elsewhere.invalid)
    "next_scheme",     # list page whose `next` flips http <-> https
    "next_loop",       # list page whose `next` points back at the same page
    "redirect",        # 302 to another host (`host`, default elsewhere.invalid)
)
ORDERING_FIELDS = ("created", "updated", "name", "email", "id", "status", "tax_id")
EXACT_FIELDS = ("id", "name", "email", "tax_id", "currency", "status", "reference", "manager", "zip_code",
                "phone", "website", "send_invoices", "send_collections", "send_vouchers", "test_mode")
SEARCH_FIELDS = ("name", "email", "tax_id", "reference")
DATE_FIELDS = ("created", "updated")

logger = logging.getLogger(__name__)


class DropConnection(Exception):
    """Raised inside a response on purpose so uvicorn closes the socket mid-body."""


@dataclass
class Fault:
    kind: str
    path: str | None = None          # exact path, or a prefix when it ends with "*"
    query: str | None = None         # parameters the request must carry, e.g. "page=3"
    nth: int | None = None           # the Nth API request since start or reset (1-based)
    times: int | None = 1            # how many requests it hits; None = every matching one
    status: int = 503
    retry_after: str | None = None   # Retry-After header value for status faults
    body: str | None = None          # body override for status faults
    chunk_delay: float = 0.2
    seconds: float = 30.0
    host: str = "elsewhere.invalid"  # where next_host and redirect faults point
    id: int = 0
    hits: int = 0

    def matches(self, number: int, path: str, query: str = "") -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.nth is not None and number != self.nth:
            return False
        if self.query is not None and not set(parse_qsl(self.query)) <= set(parse_qsl(query)):
            return False
        if self.path is not None:
            if self.path.endswith("*"):
                return path.startswith(self.path[:-1])
            return path == self.path
        return True


@dataclass
class PendingChange:
    customer_id: str | None  # None: create a customer with ``fields``
    fields: dict[str, Any]
    due_time: float | None = None
    due_request: int | None = None

    def is_due(self, number: int, now: float) -> bool:
        return (self.due_time is not None and now >= self.due_time) or (
            self.due_request is not None and number >= self.due_request
        )


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode(), headers or [])


class TokenBucket:
    """``rate`` requests per second with bursts up to ``burst``; beyond that, 429 with Retry-After.

    Retry-After is the time until the next token, in seconds with millisecond precision (Piriod
    documents no rate limit; fractional values let clients pace themselves precisely).
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(1.0, self.rate / 10)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 if the request may pass, else seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class EmulatorState:
    """Customers of two workspaces (yours and a foreign one), faults, scheduled changes and the request log."""

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
        self._fault_ids = 0
        self._records: dict[str, dict[str, Any]] = {}
        self._owner: dict[str, str] = {}
        self._json: dict[str, bytes] = {}
        self._views: dict[tuple, list[str]] = {}
        self._rng = random.Random(f"later-{seed}")
        for record in make_customers(customers, seed):
            self._add(record, self.workspace)
        for record in make_customers(5, seed + 1_000_003):
            self._add(record, self.other_workspace)

    # ------------------------------------------------------------------ records

    def _add(self, record: dict[str, Any], workspace: str) -> None:
        self._records[record["id"]] = record
        self._owner[record["id"]] = workspace
        self._changed(record["id"])

    def _changed(self, customer_id: str) -> None:
        self._json.pop(customer_id, None)
        self._views.clear()

    def record_json(self, customer_id: str) -> bytes:
        cached = self._json.get(customer_id)
        if cached is None:
            cached = self._json[customer_id] = json.dumps(self._records[customer_id], ensure_ascii=False).encode()
        return cached

    def visible(self, customer_id: str, workspace: str, test_mode: bool) -> bool:
        record = self._records.get(customer_id)
        return record is not None and self._owner[customer_id] == workspace and record["test_mode"] == test_mode

    def create_customer(self, fields: dict[str, Any], *, workspace: str | None = None) -> dict[str, Any]:
        """A new customer created now (as a signup flow would), with ``fields`` laid over generated data."""
        now = datetime.now(timezone.utc)
        record = make_customer(self._rng, test_mode=bool(fields.get("test_mode", False)), created=now)
        record["updated"] = isoformat(now)
        record.update(fields)
        self._add(record, workspace or self.workspace)
        return record

    def update_customer(self, customer_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        record = self._records[customer_id]
        record.update(fields)
        if "updated" not in fields:
            record["updated"] = isoformat(datetime.now(timezone.utc))
        self._changed(customer_id)
        return record

    def records(self, *, workspace: str | None = None, test_mode: bool = False) -> list[dict[str, Any]]:
        workspace = workspace or self.workspace
        return [r for i, r in self._records.items() if self._owner[i] == workspace and r["test_mode"] == test_mode]

    # ------------------------------------------------------------------ faults and scheduled changes

    def add_fault(self, **spec: Any) -> Fault:
        if spec.get("kind") not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {spec.get('kind')!r}; choose from {', '.join(FAULT_KINDS)}")
        self._fault_ids += 1
        fault = Fault(**spec, id=self._fault_ids)
        self.faults.append(fault)
        return fault

    def take_fault(self, number: int, path: str, query: str = "") -> Fault | None:
        for fault in self.faults:
            if fault.matches(number, path, query):
                fault.hits += 1
                return fault
        return None

    def schedule_change(self, change: PendingChange) -> None:
        if change.customer_id is not None and change.customer_id not in self._records:
            raise KeyError(change.customer_id)
        self.pending.append(change)

    def apply_due_changes(self, number: int) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        for change in [c for c in self.pending if c.is_due(number, now)]:
            self.pending.remove(change)
            if change.customer_id is None:
                self.create_customer(dict(change.fields))
            else:
                self.update_customer(change.customer_id, change.fields)

    def reset(self) -> None:
        self.request_count = 0
        self.requests.clear()
        self.faults.clear()
        self.pending.clear()

    # ------------------------------------------------------------------ listing

    def listing(self, workspace: str, test_mode: bool, params: list[tuple[str, str]]) -> list[str] | Response:
        """Ids matching the filters in ``params``, ordered; cached until a record changes."""
        key = (workspace, test_mode, tuple(sorted(p for p in params if p[0] not in ("page", "page_size"))))
        if key in self._views:
            return self._views[key]
        filters = []
        ordering = "-created"
        for name, value in params:
            if name in ("page", "page_size"):
                continue
            if name == "ordering":
                ordering = value
                continue
            built = _build_filter(name, value)
            if isinstance(built, Response):
                return built
            if built is not None:
                filters.append(built)
        ids = [
            customer_id
            for customer_id, record in self._records.items()
            if self._owner[customer_id] == workspace
            and record["test_mode"] == test_mode
            and all(check(record) for check in filters)
        ]
        for name in reversed([n.strip() for n in ordering.split(",") if n.strip()] + ["id"]):
            reverse = name.startswith("-")
            attribute = name.lstrip("-")
            if attribute in ORDERING_FIELDS:  # unknown ordering fields are ignored, as DRF does
                ids.sort(key=lambda i: _sort_key(self._records[i].get(attribute)), reverse=reverse)
        self._views[key] = ids
        return ids


def _sort_key(value: Any) -> tuple:
    return (value is None, "" if value is None else str(value).lower())


def _parse_moment(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+") if "T" in value else value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _field_value(record: dict[str, Any], name: str) -> Any:
    if name in ("country", "state"):
        nested = record.get(name)
        return nested.get("id") if isinstance(nested, dict) else nested
    return record.get(name)


def _same(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):
        return wanted.strip().lower() in (("true", "1", "yes") if actual else ("false", "0", "no"))
    return actual is not None and str(actual) == wanted


def _build_filter(name: str, value: str) -> Callable[[dict[str, Any]], bool] | Response | None:
    """One query parameter as a predicate; None for parameters Piriod would ignore; a 400 for bad values."""
    if name == "search":
        needle = value.lower()
        return lambda r: any(needle in str(r.get(f) or "").lower() for f in SEARCH_FIELDS)
    if name.startswith("metadata__") and len(name) > len("metadata__"):
        key = name[len("metadata__"):]
        return lambda r: _same((r.get("metadata") or {}).get(key), value)
    if name in ("sources", "subscriptions"):
        return lambda r: value in (r.get(name) or [])
    base, _, lookup = name.partition("__")
    if base in DATE_FIELDS and lookup in ("gte", "lte", "gt", "lt", ""):
        moment = _parse_moment(value)
        if moment is None:
            return json_response(400, {name: ["Enter a valid date/time."]})
        compare = {"gte": lambda a: a >= moment, "lte": lambda a: a <= moment, "gt": lambda a: a > moment,
                   "lt": lambda a: a < moment, "": lambda a: a == moment}[lookup]
        return lambda r: compare(_parse_moment(r[base]))
    if base in EXACT_FIELDS + ("country", "state"):
        if lookup == "":
            return lambda r: _same(_field_value(r, base), value)
        if lookup == "in":
            wanted = [v for v in value.split(",") if v != ""]
            return lambda r: any(_same(_field_value(r, base), w) for w in wanted)
    return None


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
            body = await _read_body(receive)
            await _send(send, self._control(scope["method"], path, scope.get("query_string", b""), body))
            return
        await self._api(scope, receive, send)

    # ------------------------------------------------------------------ Piriod API

    async def _api(self, scope: dict, receive: Callable, send: Callable) -> None:
        state = self.state
        state.request_count += 1
        number = state.request_count
        state.apply_due_changes(number)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry = _log_entry(number, scope["method"], path, query, headers, state.token)
        state.requests.append(entry)
        if state.latency:
            await asyncio.sleep(state.latency)
        fault = state.take_fault(number, path, query)
        wait = state.bucket.take() if state.bucket and not fault else 0.0
        if wait:
            fault = Fault("status", status=429, retry_after=f"{max(wait, 0.001):.3f}")
        entry["fault"] = fault.kind if fault else None
        if fault and fault.kind in ("status", "invalid_json", "non_object", "redirect"):
            response = _fault_response(fault, headers)
        else:
            response = self._handle(scope["method"], path, query, headers)
            if fault:
                response = _rewrite(fault, response, path, query, headers)
        entry["status"] = response.status
        if fault and fault.kind == "drop":
            await _send_dropped(send, response)
        elif fault and fault.kind == "slow_body":
            await _send_slowly(send, receive, response, fault)
        else:
            await _send(send, response)

    def _handle(self, method: str, raw_path: str, query: str, headers: dict[str, str]) -> Response:
        state = self.state
        segments = raw_path.split("/")
        if segments[:2] != ["", "customers"]:
            return json_response(404, {"detail": "Not found."})
        if not raw_path.endswith("/"):
            location = f"http://{headers.get('host', '')}{raw_path}/" + (f"?{query}" if query else "")
            return json_response(301, {}, [("Location", location)])
        if method != "GET":
            return json_response(405, {"detail": f'Method "{method}" not allowed.'})
        denied = _authenticate(headers, state)
        if denied:
            return denied
        workspace = headers["x-simple-workspace"].strip()
        test_mode = headers.get("x-piriod-test-mode", "false").strip().lower() in ("true", "1")
        if len(segments) == 3:  # /customers/
            return self._list(workspace, test_mode, query, headers)
        if len(segments) == 4:  # /customers/{id}/
            customer_id = unquote(segments[2])
            if not state.visible(customer_id, workspace, test_mode):
                return json_response(404, {"detail": "Not found."})
            return Response(200, state.record_json(customer_id))
        return json_response(404, {"detail": "Not found."})

    def _list(self, workspace: str, test_mode: bool, query: str, headers: dict[str, str]) -> Response:
        params = parse_qsl(query, keep_blank_values=True)
        ids = self.state.listing(workspace, test_mode, params)
        if isinstance(ids, Response):
            return ids
        values = dict(params)
        page_size = _page_size(values.get("page_size"))
        pages = max(1, -(-len(ids) // page_size))
        page = pages if values.get("page") == "last" else _positive_int(values.get("page", "1"))
        if page is None or page > pages:
            return json_response(404, {"detail": "Invalid page."})
        base = f"http://{headers.get('host', '')}/customers/"
        chunk = ids[(page - 1) * page_size: page * page_size]
        head = {
            "count": len(ids),
            "next": _page_url(base, params, page + 1) if page < pages else None,
            "previous": _page_url(base, params, page - 1) if page > 1 else None,
        }
        body = json.dumps(head)[:-1].encode() + b', "results": [' + b", ".join(
            self.state.record_json(i) for i in chunk
        ) + b"]}"
        return Response(200, body)

    # ------------------------------------------------------------------ control API

    def _control(self, method: str, path: str, query: bytes, body: bytes) -> Response:
        state = self.state
        route = path[len(CONTROL_PREFIX):].strip("/") if path.startswith(CONTROL_PREFIX) else ""
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return json_response(400, {"detail": "control body must be JSON"})
        try:
            if route == "" and method == "GET":
                return json_response(200, {
                    "workspace": state.workspace, "token": state.token,
                    "other_workspace": state.other_workspace, "other_token": state.other_token,
                    "customers": len(state.records()), "test_mode_customers": len(state.records(test_mode=True)),
                    "latency_ms": state.latency * 1000, "requests": state.request_count,
                })
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
            if route == "reset" and method == "POST":
                state.reset()
                return json_response(200, {"reset": True})
            if route == "customers":
                if method == "POST":
                    if "after_seconds" in payload or "after_requests" in payload:
                        return self._schedule(None, payload)
                    workspace = payload.pop("workspace", None)
                    return json_response(201, state.create_customer(payload, workspace=workspace))
                test_mode = dict(parse_qsl(query.decode())).get("test_mode", "false") == "true"
                return json_response(200, state.records(test_mode=test_mode))
            if route.startswith("customers/"):
                customer_id = unquote(route[len("customers/"):])
                if customer_id not in state._records:
                    return json_response(404, {"detail": f"no customer {customer_id!r}"})
                if method == "PATCH":
                    if "after_seconds" in payload or "after_requests" in payload:
                        return self._schedule(customer_id, payload)
                    return json_response(200, state.update_customer(customer_id, payload))
                return json_response(200, state._records[customer_id])
        except (TypeError, ValueError, KeyError) as exc:
            return json_response(400, {"detail": f"{type(exc).__name__}: {exc}"})
        return json_response(404, {"detail": f"no control route {method} {path}"})

    def _schedule(self, customer_id: str | None, payload: dict[str, Any]) -> Response:
        """Create (``customer_id`` None) or change a customer once a time or a request count is reached."""
        after_seconds = payload.pop("after_seconds", None)
        after_requests = payload.pop("after_requests", None)
        self.state.schedule_change(PendingChange(
            customer_id,
            payload,
            due_time=None if after_seconds is None else time.monotonic() + float(after_seconds),
            due_request=None if after_requests is None else self.state.request_count + int(after_requests),
        ))
        return json_response(202, {"scheduled": True})


# ---------------------------------------------------------------------- helpers


def _authenticate(headers: dict[str, str], state: EmulatorState) -> Response | None:
    """Piriod's order: token (401), then workspace header (400), then membership (403)."""
    authorization = headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "token":
        return json_response(401, {"detail": "Authentication credentials were not provided."},
                             [("WWW-Authenticate", "Token")])
    credential = credential.strip()
    if not credential:
        return json_response(401, {"detail": "Invalid token header. No credentials provided."},
                             [("WWW-Authenticate", "Token")])
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


def _fault_response(fault: Fault, headers: dict[str, str]) -> Response:
    if fault.kind == "status":
        extra = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
        if fault.body is not None:
            return Response(fault.status, fault.body.encode(), extra, "text/plain")
        if fault.status == 429:
            return json_response(429, {"detail": "Request was throttled."}, extra)
        if fault.status >= 500:
            title = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                     504: "Gateway Timeout"}.get(fault.status, "Error")
            html = f"<html><head><title>{fault.status} {title}</title></head><body><h1>{title}</h1></body></html>"
            return Response(fault.status, html.encode(), extra, "text/html")
        return json_response(fault.status, {"detail": "Injected fault."}, extra)
    if fault.kind == "invalid_json":
        return Response(200, b"<html><body>Maintenance</body></html>", [], "text/html")
    if fault.kind == "non_object":
        return json_response(200, ["not", "an", "object"])
    return json_response(302, {}, [("Location", f"http://{fault.host}/customers/")])  # redirect


def _rewrite(fault: Fault, response: Response, path: str, query: str, headers: dict[str, str]) -> Response:
    """Faults that damage a real answer rather than replace it."""
    if fault.kind == "truncated_json":
        return Response(response.status, response.body[: max(1, len(response.body) // 2)], response.headers)
    if fault.kind in ("missing_results", "next_host", "next_scheme", "next_loop") and response.status == 200:
        page = json.loads(response.body)
        if fault.kind == "missing_results":
            page.pop("results", None)
        elif fault.kind == "next_loop":
            page["next"] = f"http://{headers.get('host', '')}{path}" + (f"?{query}" if query else "")
        elif page.get("next"):
            scheme, _, rest = page["next"].partition("://")
            if fault.kind == "next_scheme":
                page["next"] = f"{'https' if scheme == 'http' else 'http'}://{rest}"
            else:
                page["next"] = f"{scheme}://{fault.host}/{rest.partition('/')[2]}"
        return json_response(200, page)
    return response


def _start(response: Response, length: int) -> dict:
    headers = [(b"content-type", response.content_type.encode()), (b"content-length", str(length).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers]
    return {"type": "http.response.start", "status": response.status, "headers": headers}


async def _send(send: Callable, response: Response) -> None:
    await send(_start(response, len(response.body)))
    await send({"type": "http.response.body", "body": response.body})


async def _send_dropped(send: Callable, response: Response) -> None:
    await send(_start(response, len(response.body)))
    await send({"type": "http.response.body", "body": response.body[: len(response.body) // 2], "more_body": True})
    raise DropConnection("connection dropped on purpose by a 'drop' fault")


async def _send_slowly(send: Callable, receive: Callable, response: Response, fault: Fault) -> None:
    """Trickle the body; stop when the client leaves or ``fault.seconds`` pass (then drop)."""
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await send(_start(response, len(response.body)))
        stop = time.monotonic() + fault.seconds
        for index in range(len(response.body)):
            if gone.done() or time.monotonic() > stop:
                raise DropConnection("slow body abandoned")
            await send({"type": "http.response.body", "body": response.body[index:index + 1], "more_body": True})
            await asyncio.sleep(fault.chunk_delay)
        await send({"type": "http.response.body", "body": b""})
    finally:
        gone.cancel()


async def _wait_disconnect(receive: Callable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Callable) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
