"""Piriod's API rules, independent of the HTTP client: what a request may be, what an answer means.

The sync and async transports build paths, query strings and retry delays here, and turn answers into
JSON or typed errors here, so both follow the same rules; bad input is refused before any request exists.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlsplit

from airflow_provider_piriod import jsoncodec
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
from airflow_provider_piriod.redaction import (
    MAX_DETAIL_CHARS,
    MAX_ERROR_CHARS,
    MAX_ERROR_FIELDS,
    MAX_MESSAGE_CHARS,
    clean,
    redact,
    secrets_of,
    snippet,
)

CUSTOMERS_PATH = "/customers/"
MAX_PAGE_SIZE = 100
MAX_WORKERS = 64
MAX_ID_LENGTH = 1024
RESERVED_PARAMS = frozenset({"page", "page_size"})
MAX_LINK_CHARS = 4096
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


class PiriodDecodeError(PiriodResponseError):
    """A 2xx answer whose body is not valid JSON (truncated, or HTML from a proxy); retried."""


TRANSIENT_ERRORS = (PiriodNetworkError, PiriodRateLimitError, PiriodServerError, PiriodDecodeError)


# ----------------------------------------------------------------------------- request building


def validate_object_id(object_id: Any, argument: str = "object_id", *, integers: bool = False) -> str:
    """``object_id`` as the text of one path segment, else PiriodInputError (integers only where allowed)."""
    if integers and isinstance(object_id, int) and not isinstance(object_id, bool) and object_id >= 0:
        if object_id.bit_length() > 64:
            raise PiriodInputError(f"{argument} is a whole number too large to be an id")
        return str(object_id)
    if not isinstance(object_id, str):
        kinds = "a string or a whole number" if integers else "a string"
        raise PiriodInputError(f"{argument} must be {kinds}, got {type(object_id).__name__}")
    if not object_id.strip():
        raise PiriodInputError(f"{argument} is empty or blank")
    if object_id in (".", ".."):
        # HTTP clients resolve dot segments even when percent-encoded, so these can never be sent safely
        raise PiriodInputError(f"{argument} {object_id!r} is not a valid id")
    if len(object_id) > MAX_ID_LENGTH:
        raise PiriodInputError(f"{argument} is {len(object_id)} characters long (at most {MAX_ID_LENGTH})")
    _check_encodable(object_id, argument)
    return object_id


def _check_encodable(text: str, argument: str) -> None:
    """Lone surrogates (from broken decoding upstream) cannot be sent in a URL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PiriodInputError(f"{argument} is not valid Unicode text (it holds a lone surrogate)") from None


def validate_object_ids(object_ids: Any, argument: str = "object_ids", *, integers: bool = False) -> list[str]:
    """Check a list of ids up front, so a bad one fails before any request is sent."""
    if isinstance(object_ids, (str, bytes)) or not isinstance(object_ids, Iterable):
        raise PiriodInputError(f"{argument} must be a list of ids, got {type(object_ids).__name__}")
    return [
        validate_object_id(object_id, f"{argument}[{index}]", integers=integers)
        for index, object_id in enumerate(object_ids)
    ]


def customer_path(customer_id: str) -> str:
    """``/customers/<id>/`` with every reserved character of the id percent-encoded."""
    return f"{CUSTOMERS_PATH}{quote(validate_object_id(customer_id, 'customer_id'), safe='')}/"


def validate_whole_number(value: Any, name: str, low: int, high: int) -> int:
    """``value`` if it is a whole number (not a bool) from ``low`` to ``high``; else PiriodInputError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PiriodInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def validate_page_size(page_size: Any) -> int:
    return validate_whole_number(page_size, "page_size", 1, MAX_PAGE_SIZE)


def validate_max_workers(max_workers: Any) -> int:
    return validate_whole_number(max_workers, "max_workers", 1, MAX_WORKERS)


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
    if isinstance(value, int) and value.bit_length() > 256:
        raise PiriodInputError(f"filters[{key!r}] is a whole number too large to send")
    if isinstance(value, (str, int, float, Decimal)):
        return str(value)
    raise PiriodInputError(
        f"filters[{key!r}] must be a string, number, boolean, date or list, got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------- which next links are followed


def follow_next(link: Any, base_url: str, listed_path: str, secrets: str | Iterable[str] = ()) -> str:
    """The URL to request for a ``next`` link: the configured origin + the listed path + the link's query.

    A link is never sent as given, and only if it names the same host, port and the very path being listed;
    anything a client could read differently (backslashes, userinfo, control characters) is refused, so the
    token cannot be steered to another host or another resource.
    """
    if not isinstance(link, str):
        raise _refuse(listed_path, f"it is a JSON {type(link).__name__}, not a URL")
    if len(link) > MAX_LINK_CHARS or _UNSAFE_IN_URL.search(link):
        why = "it holds characters a URL cannot carry: whitespace, control characters or backslashes, or it is too long"
        raise _refuse(listed_path, why)
    if any(redact(form, secrets) != form for form in (link, unquote_plus(link))):  # %74%6F%6B... too
        raise _refuse(listed_path, "it carries the API token, which must never travel in a URL")
    base = urlsplit(base_url)
    try:
        target = urlsplit(link)
        port, hostname = _port(target), target.hostname
    except ValueError:
        raise _refuse(listed_path, "it is not a valid URL") from None
    if "@" in target.netloc:
        raise _refuse(listed_path, "it carries user information")
    same_host = (hostname or "").lower() == (base.hostname or "").lower()
    https_echo = base.scheme == "https" and target.scheme == "http" and target.port in (None, base.port)
    if not same_host or not ((target.scheme == base.scheme and port == _port(base)) or https_echo):
        raise _refuse(listed_path, f"it points to another origin than {base.scheme}://{base.netloc}")
    if target.path != listed_path:
        raise _refuse(listed_path, "it points to another path than the list being read")
    return f"{base.scheme}://{base.netloc}{listed_path}" + (f"?{target.query}" if target.query else "")


def _refuse(path: str, why: str) -> PiriodResponseError:
    why = f"refusing to follow 'next' ({why}); the token is only sent to the configured host, for the list being read"
    return PiriodResponseError(f"Piriod GET {path}: {why}", method="GET", path=path)


def _port(parts: Any) -> int | None:
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


# ----------------------------------------------------------------------------- what an answer means


def answer_json(
    method: str, path: str, status: int, reason: str, body: bytes, headers: Mapping[str, str], secrets: Any = ()
) -> Any:
    """The JSON of a 2xx answer, or the typed error of any other: the last step of every attempt."""
    if not 200 <= status < 300:
        raise error_from_response(method, path, status, reason, body, headers, secrets)
    return decode_json(body, method, path, status, secrets)


def decode_json(body: bytes, method: str, path: str, status: int, secrets: Any = ()) -> Any:
    """The JSON of a 2xx body, money exact; an undecodable body is a (retried) PiriodDecodeError."""
    error: type[PiriodResponseError]
    try:
        return jsoncodec.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        error, reason = PiriodDecodeError, "not valid JSON"  # truncated, or HTML from a proxy: worth a retry
    except ValueError as exc:
        error, reason = PiriodResponseError, f"JSON this provider refuses ({exc})"  # NaN, nesting: deterministic
    raise error(
        f"Piriod {method} {path} returned {status} with a body that is {reason} "
        f"({len(body)} bytes, starts {snippet(body, secrets)!r})",
        status_code=status,
        method=method,
        path=path,
    )


def check_object(data: Any, method: str, path: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        what = f"returned JSON {type(data).__name__}, expected an object"
        raise PiriodResponseError(f"Piriod {method} {path} {what}", method=method, path=path)
    return data


def check_requested_object(data: Any, object_id: str, label: str, path: str) -> dict[str, Any]:
    """A retrieve answer must be an object whose ``id`` is the id asked for (``12`` answers ``"12"``)."""
    obj = check_object(data, "GET", path)
    returned = obj.get("id")
    if isinstance(returned, bool) or not isinstance(returned, (str, int)) or str(returned) != object_id:
        raise PiriodResponseError(
            f"Piriod GET {path} answered with another {label} than the {object_id!r} asked for, id "
            f"{str(returned)!r}; refusing to return it under the id asked for",
            method="GET",
            path=path,
        )
    return obj


def check_page(data: Any, method: str, path: str) -> dict[str, Any]:
    """A list answer must be Piriod's envelope: an object with a ``results`` list and an integer ``count``."""
    page = check_object(data, method, path)
    count = page.get("count")
    if not isinstance(page.get("results"), list) or not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise PiriodResponseError(
            f"Piriod {method} {path} returned an object without a 'results' list and a 'count' "
            f"(keys: {sorted(map(str, page))[:10]})",
            method=method,
            path=path,
        )
    return page


def error_from_response(
    method: str, path: str, status: int, reason: str, body: bytes, headers: Mapping[str, str], secrets: Any = ()
) -> PiriodError:
    """Map a non-2xx answer to its typed error, with Piriod's ``detail`` or field errors in the message."""
    detail, errors = _explain(body, secrets_of(secrets))
    text = f"Piriod {method} {path} returned {status} {reason}".rstrip() + (f": {detail}" if detail else "")
    kwargs: dict[str, Any] = {"status_code": status, "detail": detail, "method": method, "path": path}
    if status == 429:
        return PiriodRateLimitError(text, retry_after=parse_retry_after(headers.get("Retry-After")), **kwargs)
    if status >= 500:
        return PiriodServerError(text, retry_after=parse_retry_after(headers.get("Retry-After")), **kwargs)
    if status == 401:
        return PiriodAuthError(f"{text} (check the connection's API token)", **kwargs)
    if status == 403 or (status == 400 and "workspace" in (detail or "").lower()):
        return PiriodAuthError(f"{text} (check the connection's workspace: the token must belong to it)", **kwargs)
    if status == 404:
        return PiriodNotFoundError(text, **kwargs)
    if status in (400, 422):
        return PiriodValidationError(text, errors=errors, **kwargs)
    if status < 200:
        return PiriodResponseError(f"{text}; an interim answer where a final one was due", **kwargs)
    if 300 <= status < 400:
        where = _location_host(headers.get("Location", ""), secrets)
        return PiriodResponseError(f"{text}; redirects are not followed (Location points to {where})", **kwargs)
    return PiriodError(text, **kwargs)


def _location_host(location: str, secrets: Any) -> str:
    """Only the host of a redirect target (its userinfo, path and query are the server's to fill), decoded
    before it is redacted: ``%74ok_...`` must not spell the token."""
    try:
        host = urlsplit(location).hostname
    except ValueError:
        return "an invalid URL"
    return clean(unquote(host), secrets, 100) if host else "the same host"


def _explain(body: bytes, secrets: tuple[str, ...]) -> tuple[str | None, dict[str, list[str]]]:
    """Piriod's ``detail``, or its field errors flattened to ``field: message`` text; redacted before any cut."""
    try:
        data = jsoncodec.loads(body) if body.strip() else None
    except ValueError:
        return f"non-JSON body: {snippet(body, secrets)}", {}
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return clean(data["detail"], secrets, MAX_MESSAGE_CHARS), {}
    if isinstance(data, dict):
        fields = list(data.items())[:MAX_ERROR_FIELDS]
        errors = {clean(k, secrets, MAX_ERROR_CHARS): _messages(v, secrets) for k, v in fields}
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())[:MAX_MESSAGE_CHARS] or None, errors
    if isinstance(data, list):
        return " ".join(_messages(data, secrets))[:MAX_MESSAGE_CHARS] or None, {}
    return (clean(data, secrets, MAX_DETAIL_CHARS) if data is not None else None), {}


def _messages(value: Any, secrets: tuple[str, ...], depth: int = 0) -> list[str]:
    if depth > 5:
        return ["…"]
    if isinstance(value, list):
        return [m for item in value[:20] for m in _messages(item, secrets, depth + 1)]
    if isinstance(value, dict):
        items = list(value.items())[:20]
        return [
            f"{clean(k, secrets, MAX_ERROR_CHARS)}: {m}" for k, v in items for m in _messages(v, secrets, depth + 1)
        ]
    return [clean(value, secrets, MAX_ERROR_CHARS)]
