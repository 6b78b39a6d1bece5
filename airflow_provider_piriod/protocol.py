"""Piriod's HTTP rules, independent of the HTTP client.

The sync hook (requests) and the async trigger (httpx) both build paths, query strings and
retry delays here and turn answers into typed errors here, so both follow the same rules.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow_provider_piriod.exceptions import (
    PiriodAuthError,
    PiriodError,
    PiriodInputError,
    PiriodNetworkError,
    PiriodNotFoundError,
    PiriodRateLimitError,
    PiriodResponseError,
    PiriodServerError,
    PiriodValidationError,
)

CUSTOMERS_PATH = "/customers/"
MAX_PAGE_SIZE = 100
MAX_WORKERS = 64
MAX_ID_LENGTH = 1024
RESERVED_PARAMS = frozenset({"page", "page_size"})
REDACTED = "***"


class PiriodDecodeError(PiriodResponseError):
    """A 2xx answer whose body is not valid JSON (truncated, or HTML from a proxy); retried."""


TRANSIENT_ERRORS = (PiriodNetworkError, PiriodRateLimitError, PiriodServerError, PiriodDecodeError)


# ----------------------------------------------------------------------------- request building


def validate_customer_id(customer_id: Any, argument: str = "customer_id") -> str:
    """Return ``customer_id`` if it can be sent as one path segment, else raise PiriodInputError."""
    if not isinstance(customer_id, str):
        raise PiriodInputError(f"{argument} must be a string, got {type(customer_id).__name__}")
    if not customer_id.strip():
        raise PiriodInputError(f"{argument} is empty or blank")
    if customer_id in (".", ".."):
        # HTTP clients resolve dot segments even when percent-encoded, so these can never be sent safely
        raise PiriodInputError(f"{argument} {customer_id!r} is not a valid id")
    if len(customer_id) > MAX_ID_LENGTH:
        raise PiriodInputError(f"{argument} is {len(customer_id)} characters long (at most {MAX_ID_LENGTH})")
    _check_encodable(customer_id, argument)
    return customer_id


def _check_encodable(text: str, argument: str) -> None:
    """Lone surrogates (from broken decoding upstream) cannot be sent in a URL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PiriodInputError(f"{argument} is not valid Unicode text (it holds a lone surrogate)") from None


def validate_customer_ids(customer_ids: Any, argument: str = "customer_ids") -> list[str]:
    """Check a list of ids up front, so a bad one fails before any request is sent."""
    if isinstance(customer_ids, (str, bytes)) or not isinstance(customer_ids, Iterable):
        raise PiriodInputError(f"{argument} must be a list of ids, got {type(customer_ids).__name__}")
    ids = list(customer_ids)
    for index, customer_id in enumerate(ids):
        validate_customer_id(customer_id, f"{argument}[{index}]")
    return ids


def customer_path(customer_id: str) -> str:
    """``/customers/<id>/`` with every reserved character of the id percent-encoded."""
    return f"{CUSTOMERS_PATH}{quote(validate_customer_id(customer_id), safe='')}/"


def validate_page_size(page_size: Any) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise PiriodInputError(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    return page_size


def validate_max_workers(max_workers: Any) -> int:
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or not 1 <= max_workers <= MAX_WORKERS:
        raise PiriodInputError(f"max_workers must be a whole number from 1 to {MAX_WORKERS}, got {max_workers!r}")
    return max_workers


def filter_params(filters: Mapping[str, Any] | None) -> dict[str, str]:
    """Serialise filters the way Piriod reads them: lists comma-joined, booleans lowercase, dates ISO."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise PiriodInputError(f"filters must be a dict, got {type(filters).__name__}")
    params: dict[str, str] = {}
    for key, value in filters.items():
        if not isinstance(key, str) or not key.strip():
            raise PiriodInputError(f"filters: every key must be a non-empty string, got {key!r}")
        if key in RESERVED_PARAMS:
            raise PiriodInputError(f"filters: {key!r} is set by the hook (use page_size=...), not a filter")
        _check_encodable(key, f"filters key {key!r}")
        params[key] = _filter_value(key, value)
        _check_encodable(params[key], f"filters[{key!r}]")
    return params


def _filter_value(key: str, value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_scalar(key, item) for item in value]
        if not items:
            raise PiriodInputError(f"filters[{key!r}] is an empty list")
        if any("," in item for item in items):
            raise PiriodInputError(f"filters[{key!r}]: list items cannot contain ',' (Piriod splits on it)")
        return ",".join(items)
    return _scalar(key, value)


def _scalar(key: str, value: Any) -> str:
    if value is None:
        raise PiriodInputError(f"filters[{key!r}] is None; leave the filter out instead")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (str, int, float, Decimal)):
        return str(value)
    raise PiriodInputError(f"filters[{key!r}] must be a string, number, boolean, date or list, got {type(value).__name__}")


def next_page_url(next_url: Any, base_url: str, method: str, path: str) -> str:
    """Follow ``next`` only on the configured scheme+host+port (an http:// echo of an https base is upgraded)."""
    if not isinstance(next_url, str) or not next_url:
        raise PiriodResponseError(f"Piriod {method} {path}: 'next' is not a URL: {str(next_url)[:80]!r}")
    base = urlsplit(base_url)
    target = urlsplit(next_url)
    same_host = (target.hostname or "").lower() == (base.hostname or "").lower()
    if same_host and target.scheme == base.scheme and _port(target) == _port(base):
        return next_url
    if same_host and base.scheme == "https" and target.scheme == "http" and target.port in (None, base.port):
        return urlunsplit(target._replace(scheme="https", netloc=base.netloc))
    raise PiriodResponseError(
        f"Piriod {method} {path}: refusing to follow 'next' to {target.scheme}://{target.netloc} "
        f"(configured {base.scheme}://{base.netloc}); the token is only sent to the configured host"
    )


def _port(parts) -> int | None:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme)


# ----------------------------------------------------------------------------- retry timing


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    retry_after_cap: float = 60.0,
) -> float:
    """Seconds before retry ``attempt`` (1-based): Retry-After when given (capped), else exponential with jitter."""
    if retry_after is not None:
        # spread clients a little (up to 10 %) so they do not all come back in the same instant
        wait = min(retry_after, retry_after_cap)
        return wait + random.uniform(0, 0.1 * wait + 0.01)
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


# ----------------------------------------------------------------------------- answers


class BodyBudget:
    """Reads a body without trusting the server: a total deadline and a size cap, checked per chunk."""

    def __init__(self, *, limit: int, timeout: float, deadline: float, method: str, path: str, status: int) -> None:
        self.limit, self.timeout, self.deadline = limit, timeout, deadline
        self.method, self.path, self.status = method, path, status
        self.size = 0

    def check_declared(self, content_length: str | None) -> None:
        if content_length and content_length.isdigit() and int(content_length) > self.limit:
            raise self._too_large(f"answer of {int(content_length)} bytes")

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise self._too_large("answer")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise PiriodNetworkError(
                f"Piriod {self.method} {self.path}: answer not complete within the {self.timeout:g} s deadline",
                status_code=self.status, method=self.method, path=self.path,
            )

    def _too_large(self, what: str) -> PiriodResponseError:
        return PiriodResponseError(
            f"Piriod {self.method} {self.path}: {what} exceeds the {self.limit}-byte limit",
            status_code=self.status, method=self.method, path=self.path,
        )


def decode_json(body: bytes, method: str, path: str, status: int, secret: str = "") -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise PiriodDecodeError(
            f"Piriod {method} {path} returned {status} with a body that is not valid JSON "
            f"({len(body)} bytes, starts {redact(_snippet(body), secret)!r})",
            status_code=status,
            method=method,
            path=path,
        ) from None


def check_object(data: Any, method: str, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PiriodResponseError(
            f"Piriod {method} {path} returned JSON {type(data).__name__}, expected an object",
            method=method,
            path=path,
        )
    return data


def check_page(data: Any, method: str, path: str) -> dict[str, Any]:
    """A list answer must be Piriod's envelope: an object with a ``results`` list and an integer ``count``."""
    page = check_object(data, method, path)
    if not isinstance(page.get("results"), list) or not isinstance(page.get("count"), int):
        raise PiriodResponseError(
            f"Piriod {method} {path} returned an object without a 'results' list and a 'count' "
            f"(keys: {sorted(page)[:10]})",
            method=method,
            path=path,
        )
    return page


def error_from_response(
    method: str,
    path: str,
    status: int,
    reason: str,
    body: bytes,
    headers: Mapping[str, str],
    secret: str = "",
) -> PiriodError:
    """
    Map a non-2xx answer to its typed error, with Piriod's ``detail`` or field errors in the message.

    ``secret`` (the token) is cut out of everything taken from the body, in case a proxy echoes it.
    """
    detail, errors = _explain(redact(body.decode("utf-8", "replace"), secret).encode())
    text = f"Piriod {method} {path} returned {status} {reason}".rstrip()
    if detail:
        text += f": {detail}"
    kwargs: dict[str, Any] = {"status_code": status, "detail": detail, "method": method, "path": path}
    if status == 429:
        return PiriodRateLimitError(text, retry_after=parse_retry_after(headers.get("Retry-After")), **kwargs)
    if status >= 500:
        return PiriodServerError(text, retry_after=parse_retry_after(headers.get("Retry-After")), **kwargs)
    if status in (401, 403) or (status == 400 and "workspace" in (detail or "").lower()):
        return PiriodAuthError(text + _auth_hint(status), **kwargs)
    if status == 404:
        return PiriodNotFoundError(text, **kwargs)
    if status == 400:
        return PiriodValidationError(text, errors=errors, **kwargs)
    if 300 <= status < 400:
        location = urlsplit(headers.get("Location", ""))
        return PiriodResponseError(
            f"{text}; redirects are not followed (Location points to {location.netloc or 'the same host'})",
            **kwargs,
        )
    return PiriodError(text, **kwargs)


def _auth_hint(status: int) -> str:
    if status == 401:
        return " (check the connection's API token)"
    return " (check the connection's workspace: the token must belong to it)"


def _explain(body: bytes) -> tuple[str | None, dict[str, list[str]]]:
    """Piriod's ``detail``, or its field errors flattened to ``field: message`` text."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return (f"non-JSON body: {_snippet(body)}" if body.strip() else None), {}
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str):
            return data["detail"], {}
        errors = {str(k): _messages(v) for k, v in data.items()}
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()) or None, errors
    if isinstance(data, list):
        return " ".join(_messages(data)) or None, {}
    return (str(data) if data is not None else None), {}


def _messages(value: Any) -> list[str]:
    if isinstance(value, list):
        return [m for item in value for m in _messages(item)]
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _messages(v)]
    return [str(value)]


def _snippet(body: bytes, limit: int = 120) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return " ".join(text.split())


def redact(text: str, secret: str) -> str:
    return text.replace(secret, REDACTED) if secret else text
