"""Turn Piriod's answers into JSON or typed errors, and keep the token out of every error.

Shared by the sync and async transports. Error text is built from what the server sent (reason
phrase, ``detail``, field errors, a snippet of a non-JSON body), so a server that echoes the
token must not be able to put it into a message: :func:`scrub` is the one place that redacts and
caps every error's message, ``detail`` and ``errors`` on its way out of the transport.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.connection import is_loopback
from airflow_provider_piriod.exceptions import (
    PiriodAuthError,
    PiriodConnectionSetupError,
    PiriodError,
    PiriodNetworkError,
    PiriodNotFoundError,
    PiriodRateLimitError,
    PiriodResponseError,
    PiriodServerError,
    PiriodValidationError,
)
from airflow_provider_piriod.protocol import PiriodDecodeError, parse_retry_after

REDACTED = "***"
#: longest message, ``detail`` and field error kept from a server's answer (a body can be megabytes)
MAX_MESSAGE_CHARS = 1000
MAX_DETAIL_CHARS = 500
MAX_ERROR_CHARS = 300
MAX_ERROR_FIELDS = 50
SNIPPET_CHARS = 120


# ----------------------------------------------------------------------------- redaction


def secrets_of(secrets: str | Iterable[str]) -> tuple[str, ...]:
    """The non-empty secrets, from one secret or several."""
    return tuple(s for s in ((secrets,) if isinstance(secrets, str) else secrets) if s)


def redact(text: str, secrets: str | Iterable[str]) -> str:
    """``text`` with every secret (and its percent-encoded form) replaced by ``***``, in any letter case."""
    for secret in secrets_of(secrets):
        for form in {secret, quote(secret, safe="")}:
            if form.lower() in text.lower():
                text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    return text


def _clean(value: Any, secrets: Iterable[str], limit: int) -> str:
    text = redact(str(value), secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(exc: PiriodError, secrets: str | Iterable[str]) -> PiriodError:
    """Redact and cap the message, ``detail`` and field ``errors`` of ``exc`` in place; returns it."""
    secrets = secrets_of(secrets)
    exc.args = tuple(_clean(arg, secrets, MAX_MESSAGE_CHARS) if isinstance(arg, str) else arg for arg in exc.args)
    if exc.detail is not None:
        exc.detail = _clean(exc.detail, secrets, MAX_DETAIL_CHARS)
    errors = getattr(exc, "errors", None)
    if isinstance(exc, PiriodValidationError) and isinstance(errors, dict):  # only it carries ``errors``
        exc.errors = {
            _clean(field, secrets, MAX_ERROR_CHARS): [_clean(m, secrets, MAX_ERROR_CHARS) for m in messages[:10]]
            for field, messages in list(errors.items())[:MAX_ERROR_FIELDS]
        }
    return exc


# ----------------------------------------------------------------------------- answers


def answer_json(
    method: str,
    path: str,
    status: int,
    reason: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Iterable[str] = (),
) -> Any:
    """The JSON of a 2xx answer, or the typed error of any other: the last step of every attempt."""
    if not 200 <= status < 300:
        raise error_from_response(method, path, status, reason, body, headers, secrets)
    return decode_json(body, method, path, status, secrets)


# ----------------------------------------------------------------------------- successful answers


def decode_json(body: bytes, method: str, path: str, status: int, secrets: str | Iterable[str] = ()) -> Any:
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
        raise PiriodResponseError(
            f"Piriod {method} {path} returned JSON {type(data).__name__}, expected an object",
            method=method,
            path=path,
        )
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


# ----------------------------------------------------------------------------- error answers


def error_from_response(
    method: str,
    path: str,
    status: int,
    reason: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Iterable[str] = (),
) -> PiriodError:
    """Map a non-2xx answer to its typed error, with Piriod's ``detail`` or field errors in the message."""
    secrets = secrets_of(secrets)
    detail, errors = _explain(body, secrets)
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
    if status in (400, 422):
        return PiriodValidationError(text, errors=errors, **kwargs)
    if status < 200:
        return PiriodResponseError(f"{text}; an interim answer where a final one was due", **kwargs)
    if 300 <= status < 400:
        return PiriodResponseError(
            f"{text}; redirects are not followed (Location points to {_location_host(headers.get('Location', ''))})",
            **kwargs,
        )
    return PiriodError(text, **kwargs)


#: what OpenSSL says when the server answers a TLS hello in plain text (an http server addressed as https)
_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})
#: resolver answers that a retry cannot change (EAI_AGAIN, "temporary failure", is retried)
_NO_SUCH_HOST = frozenset(
    code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if code is not None
)


def network_error(
    method: str,
    path: str,
    exc: BaseException,
    secrets: str | Iterable[str] = (),
    *,
    base_url: str = "",
    conn_id: str = "?",
) -> PiriodNetworkError | PiriodConnectionSetupError:
    """The typed error of a failed attempt: :class:`PiriodConnectionSetupError` if it looks like the set-up's fault.

    The call confirms that with one more attempt (a corrupted TLS record looks the same once, not twice).
    """
    text = f"Piriod {method} {path} failed before a complete answer arrived: {type(exc).__name__}: {exc}"
    transient = PiriodNetworkError(_clean(text, secrets_of(secrets), MAX_MESSAGE_CHARS), method=method, path=path)
    setup_problem = _setup_problem(exc, base_url)
    if not setup_problem:
        return transient
    text = f"Piriod {method} {path}: {setup_problem} ({type(exc).__name__}; connection {conn_id!r})"
    return PiriodConnectionSetupError(
        _clean(text, secrets_of(secrets), MAX_MESSAGE_CHARS), method=method, path=path, as_network_error=transient
    )


def _setup_problem(exc: BaseException, base_url: str) -> str | None:
    """Why connecting to ``base_url`` cannot work as configured, if a cause in the chain says so."""
    origin = urlsplit(base_url) if base_url else None
    where = origin.netloc if origin and origin.netloc else "the API URL"
    causes = list(_causes(exc))
    proxy = _proxy_of(origin)
    if proxy or any(type(cause).__name__ == "ProxyError" for cause in causes):  # requests', urllib3's, httpx's
        return _proxy_problem(causes, proxy or "in use")
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {where} was not accepted ({cause.verify_message or cause.reason}); "
                "check the API URL's host name, or point REQUESTS_CA_BUNDLE / SSL_CERT_FILE at your CA bundle"
            )
        if isinstance(cause, ssl.SSLError) and cause.reason in _PLAIN_HTTP_REASONS:
            return _plain_http_hint(origin, where)
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST:
            host = origin.hostname if origin and origin.hostname else "the API URL's host"
            return f"the host name {host!r} does not resolve ({cause.strerror}); check the connection's API URL"
    return None


def _proxy_problem(causes: list[BaseException], proxy: str) -> str | None:
    """A proxy that cannot work (plain http addressed as https, a name that does not resolve): name the proxy."""
    deterministic = any(
        (isinstance(cause, ssl.SSLError) and cause.reason in _PLAIN_HTTP_REASONS)
        or (isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST)
        for cause in causes
    )
    if not deterministic:
        return None  # a proxy that refused or dropped the connection may be back on the next attempt
    return (
        f"the proxy {proxy} could not be used (a plain http proxy written as https://, or a proxy name "
        "that does not resolve); check HTTPS_PROXY / HTTP_PROXY, or list the API host in NO_PROXY"
    )


def _proxy_of(origin: Any) -> str | None:
    """The proxy the environment sets for ``origin`` (HTTPS_PROXY, NO_PROXY), as scheme://host:port, never userinfo."""
    if origin is None or not origin.hostname or origin.scheme != "https":
        return None  # a plain-http API is reached without the environment's proxy (see the transports)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(origin.hostname, proxies):  # type: ignore[attr-defined]
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _plain_http_hint(origin: Any, where: str) -> str:
    """An http server addressed as https: say how to write the URL (and when plain http is allowed)."""
    if origin is not None and origin.hostname and origin.port is None:
        where = f"{where}:443"  # http:// alone would go to port 80
    hint = f"the server at {where} answered in plain http where https was expected; write the API URL as http://{where}"
    if origin is not None and origin.hostname:
        path = origin.path or ""
        hint += f"{path} (in a URI connection: piriod://<workspace>:<token>@{where}/http)"
        if not is_loopback(origin.hostname):
            hint += "; plain http to a non-loopback host also needs the extra allow_insecure_http=true"
    return hint


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and everything it wraps (causes, contexts, urllib3's ``reason``, exceptions in ``args``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(item for item in inner if isinstance(item, BaseException))


def deadline_error(
    method: str, path: str, timeout: float, status: int | None = None, *, request_sent: bool = False
) -> PiriodNetworkError:
    return PiriodNetworkError(
        f"Piriod {method} {path}: answer not complete within the {timeout:g} s deadline",
        request_sent=request_sent,
        status_code=status,
        method=method,
        path=path,
    )


def _location_host(location: str) -> str:
    """Only the host of a redirect target: its userinfo, path and query are the server's to fill."""
    try:
        return urlsplit(location).hostname or "the same host"
    except ValueError:
        return "an invalid URL"


def _auth_hint(status: int) -> str:
    if status == 401:
        return " (check the connection's API token)"
    return " (check the connection's workspace: the token must belong to it)"


def _explain(body: bytes, secrets: tuple[str, ...]) -> tuple[str | None, dict[str, list[str]]]:
    """Piriod's ``detail``, or its field errors flattened to ``field: message`` text; redacted before any cut."""
    try:
        data = jsoncodec.loads(body) if body.strip() else None
    except ValueError:
        return f"non-JSON body: {snippet(body, secrets)}", {}
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str):
            return _clean(data["detail"], secrets, MAX_MESSAGE_CHARS), {}
        errors = {
            _clean(k, secrets, MAX_ERROR_CHARS): _messages(v, secrets) for k, v in list(data.items())[:MAX_ERROR_FIELDS]
        }
        text = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        return text[:MAX_MESSAGE_CHARS] or None, errors
    if isinstance(data, list):
        return " ".join(_messages(data, secrets))[:MAX_MESSAGE_CHARS] or None, {}
    return (_clean(data, secrets, MAX_DETAIL_CHARS) if data is not None else None), {}


def _messages(value: Any, secrets: tuple[str, ...], depth: int = 0) -> list[str]:
    if depth > 5:
        return ["…"]
    if isinstance(value, list):
        return [m for item in value[:20] for m in _messages(item, secrets, depth + 1)]
    if isinstance(value, dict):
        return [
            f"{_clean(k, secrets, MAX_ERROR_CHARS)}: {m}"
            for k, v in list(value.items())[:20]
            for m in _messages(v, secrets, depth + 1)
        ]
    return [_clean(value, secrets, MAX_ERROR_CHARS)]


def snippet(body: bytes, secrets: str | Iterable[str] = ()) -> str:
    """The start of a body as one line of text; the token is cut out before the text is cut short."""
    secrets = secrets_of(secrets)
    window = body[: SNIPPET_CHARS * 8]
    text = redact(" ".join(window.decode("utf-8", "replace").split()), secrets)
    if len(window) < len(body):  # the window may end inside a token: drop a token's length from its end
        text = text[: max(0, len(text) - max(map(len, secrets), default=0))]
    return text[:SNIPPET_CHARS]
