"""Turn an Airflow ``piriod`` connection into validated request settings.

Parsing is strict and happens before any request: a missing token or workspace, a host that is
not a URL, plain http to a non-loopback host, or an extra like ``test_mode=maybe`` is refused
with a :class:`~airflow_provider_piriod.exceptions.PiriodConfigError` naming the field. A connection
that parsed but cannot work (a refused certificate, plain http addressed as https, a host or proxy that
does not resolve) is recognised from the failure by :func:`setup_problem`, which says what to fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from airflow_provider_piriod.exceptions import PiriodConfigError

#: the connection id hooks, operators and sensors use when none is given
DEFAULT_CONN_ID = "piriod_default"
DEFAULT_BASE_URL = "https://api.piriod.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_RATE_LIMIT_WAIT = 600.0

_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f", ""}
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")
_PREFIX = "extra__piriod__"
#: what OpenSSL says when the server answers a TLS hello in plain text (an http server addressed as https)
_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})
#: resolver answers that a retry cannot change (EAI_AGAIN, "temporary failure", is retried)
_NO_SUCH_HOST = frozenset(filter(None, (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))))

#: every extra the connection reads; anything else is reported, since a typo would silently keep a default
KNOWN_EXTRAS = (
    "test_mode",
    "timeout",
    "max_retries",
    "rate_limit_wait",
    "max_response_bytes",
    "allow_insecure_http",
    "warn_unknown_filters",
    "read_only",
    "webhook_secret",
    "allow_unsigned_webhooks",
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PiriodSettings:
    """Everything a request needs, resolved from the connection; the token is left out of repr."""

    base_url: str
    workspace: str
    token: str = field(repr=False)
    test_mode: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    allow_insecure_http: bool = False
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: how long one hook call keeps waiting out 429 answers without any request getting through
    rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT
    #: warn when a filter key is not one the resource documents, or a list is given without ``__in``
    warn_unknown_filters: bool = True
    #: every write (create, update, action, archive) is refused before any request
    read_only: bool = False
    #: the Airflow connection id, for messages
    conn_id: str = "?"
    #: extras the connection sets that this provider does not read (typos), each with a hint
    unknown_extras: tuple[str, ...] = ()

    def describe(self) -> str:
        """The effective settings in one line (never the token): what a connection test should confirm."""
        mode = "test mode" if self.test_mode else "live mode"
        return (
            f"{self.base_url}, workspace {self.workspace}, {mode}, timeout {self.timeout:g} s, "
            f"max_retries {self.max_retries}"
        )

    @property
    def headers(self) -> dict[str, str]:
        """Headers for every request, except Authorization (added at send time)."""
        return {
            "x-simple-workspace": self.workspace,
            "x-piriod-test-mode": "true" if self.test_mode else "false",
            "Accept": "application/json",
        }

    @property
    def authorization(self) -> str:
        return f"Token {self.token}"


def settings_from_connection(
    conn: Any,
    *,
    test_mode: bool | str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    log: Any = None,
) -> PiriodSettings:
    """Validate ``conn`` (an Airflow Connection) and apply the hook's overrides; warn ``log`` about unknown extras."""
    extra = _extra_of(conn)
    conn_id = getattr(conn, "conn_id", None) or "?"
    allow_insecure = _parse_bool(_extra_field(extra, "allow_insecure_http"), "allow_insecure_http", conn_id)
    unknown = unknown_extras(extra, secret=conn.password if isinstance(conn.password, str) else "")
    if unknown:
        (log or _log).warning(
            "Piriod connection %r: extras this provider does not read (their settings keep the defaults): %s",
            conn_id,
            "; ".join(unknown),
        )
    return PiriodSettings(
        conn_id=conn_id,
        unknown_extras=tuple(unknown),
        warn_unknown_filters=_parse_bool(
            _extra_field(extra, "warn_unknown_filters", default=True), "warn_unknown_filters", conn_id
        ),
        base_url=_parse_base_url(conn, allow_insecure, conn_id),
        workspace=_header_value(conn.login, "login (workspace)", conn_id),
        token=_header_value(conn.password, "password (API token)", conn_id),
        test_mode=_parse_bool(
            test_mode if test_mode is not None else _extra_field(extra, "test_mode"), "test_mode", conn_id
        ),
        timeout=_parse_seconds(
            timeout if timeout is not None else _extra_field(extra, "timeout"),
            "timeout",
            conn_id,
            default=DEFAULT_TIMEOUT,
            low=0,
            high=3600,
        ),
        max_retries=_parse_whole_number(
            max_retries if max_retries is not None else _extra_field(extra, "max_retries"),
            "max_retries",
            conn_id,
            default=DEFAULT_MAX_RETRIES,
            low=0,
            high=20,
        ),
        allow_insecure_http=allow_insecure,
        read_only=_parse_bool(_extra_field(extra, "read_only", default=False), "read_only", conn_id),
        max_response_bytes=_parse_whole_number(
            _extra_field(extra, "max_response_bytes"),
            "max_response_bytes",
            conn_id,
            default=DEFAULT_MAX_RESPONSE_BYTES,
            low=1024,
        ),
        rate_limit_wait=_parse_seconds(
            _extra_field(extra, "rate_limit_wait"),
            "rate_limit_wait",
            conn_id,
            default=DEFAULT_RATE_LIMIT_WAIT,
            low=0,
            high=86400,
            open_low=False,
        ),
    )


def webhook_options(conn: Any) -> tuple[str, bool]:
    """The connection's webhook secret (``webhook_secret``, empty if unset) and ``allow_unsigned_webhooks``.

    Read apart from :func:`settings_from_connection`: the API server needs only these to check a delivery.
    """
    extra = _extra_of(conn)
    conn_id = getattr(conn, "conn_id", None) or "?"
    secret = _extra_field(extra, "webhook_secret", default="")
    if not isinstance(secret, str):
        raise _error(conn_id, "extra webhook_secret must be a string")
    unsigned = _parse_bool(
        _extra_field(extra, "allow_unsigned_webhooks", default=False), "allow_unsigned_webhooks", conn_id
    )
    return secret.strip(), unsigned


def unknown_extras(extra: dict[str, Any], secret: str = "") -> list[str]:
    """One line per extra the provider does not read, naming the closest known one (``timout`` -> ``timeout``).

    ``secret`` (the token) is replaced by ``***`` in the names: a token pasted as an extra's name is not shown.
    """
    found = []
    for key in extra:
        name = str(key).replace(secret, "***") if secret else str(key)
        bare = name[len(_PREFIX) :] if name.startswith(_PREFIX) else name
        if bare in KNOWN_EXTRAS:
            continue
        close = difflib.get_close_matches(bare.lower(), KNOWN_EXTRAS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known extras: {', '.join(KNOWN_EXTRAS)}"
        found.append(f"{name[:60]!r} ({hint})")
    return found


def is_loopback(hostname: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts plain http may reach by default."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def setup_problem(exc: BaseException, base_url: str) -> str | None:
    """Why a connection that parsed cannot work as configured, if a cause in ``exc``'s chain says so: a
    certificate refused, plain http addressed as https, a host that does not resolve, an unusable proxy."""
    origin = urlsplit(base_url)
    where = origin.netloc or "the API URL"
    causes = list(_causes(exc))
    proxy = _proxy_of(origin)
    if proxy or any(type(cause).__name__ == "ProxyError" for cause in causes):  # requests' or urllib3's
        if not any(_no_such_host(cause) or _plain_http(cause) for cause in causes):
            return None  # a proxy that refused or dropped the connection may be back on the next attempt
        return (
            f"the proxy {proxy or 'in use'} could not be used (a plain http proxy written as https://, or a proxy "
            "name that does not resolve); check HTTPS_PROXY / HTTP_PROXY, or list the API host in NO_PROXY"
        )
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {where} was not accepted ({cause.verify_message or cause.reason}); "
                "check the API URL's host name, or point REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) at your CA bundle"
            )
        if _plain_http(cause):
            return _plain_http_hint(origin, where)
        if _no_such_host(cause):
            host = origin.hostname or "the API URL's host"
            return f"the host name {host!r} does not resolve ({cause.strerror}); check the connection's API URL"
    return None


def _plain_http(cause: BaseException) -> bool:
    return isinstance(cause, ssl.SSLError) and cause.reason in _PLAIN_HTTP_REASONS


def _no_such_host(cause: BaseException) -> TypeGuard[socket.gaierror]:
    return isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST


def _proxy_of(origin: Any) -> str | None:
    """The proxy the environment sets for ``origin`` (HTTPS_PROXY, NO_PROXY), as scheme://host:port, never userinfo."""
    if not origin.hostname or origin.scheme != "https":
        return None  # a plain-http API is reached without the environment's proxy (see the transports)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(origin.hostname, proxies):  # type: ignore[attr-defined]
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _plain_http_hint(origin: Any, where: str) -> str:
    """An http server addressed as https: say how to write the URL (and when plain http is allowed)."""
    if origin.hostname and origin.port is None:
        where = f"{where}:443"  # http:// alone would go to port 80
    hint = f"the server at {where} answered in plain http where https was expected; write the API URL as http://{where}"
    if origin.hostname:
        hint += f"{origin.path} (in a URI connection: piriod://<workspace>:<token>@{where}/http)"
        if not is_loopback(origin.hostname):
            hint += "; plain http to a non-loopback host also needs the extra allow_insecure_http=true"
    return hint


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and everything it wraps (causes, contexts, urllib3's ``reason``, exceptions in ``args``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) not in seen:
            seen.add(id(current))
            yield current
            inner = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
            todo.extend(item for item in inner if isinstance(item, BaseException))


def _extra_of(conn: Any) -> dict[str, Any]:
    extra = conn.extra_dejson if getattr(conn, "extra", None) else {}
    return extra if isinstance(extra, dict) else {}


def _extra_field(extra: dict[str, Any], name: str, default: Any = None) -> Any:
    """Read an extra written either plainly or with the ``extra__piriod__`` prefix older UIs use."""
    value = extra.get(name)
    value = value if value is not None else extra.get(f"{_PREFIX}{name}")
    return default if value is None else value


def _error(conn_id: str, message: str) -> PiriodConfigError:
    return PiriodConfigError(f"Piriod connection {conn_id!r}: {message}")


def _header_value(value: str | None, what: str, conn_id: str) -> str:
    value = (value or "").strip()
    if not value:
        raise _error(conn_id, f"{what} is required")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise _error(conn_id, f"{what} contains a line break or NUL character")
    return value


def _parse_bool(value: Any, name: str, conn_id: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _error(conn_id, f"{name} must be true or false, got {str(value)[:40]!r}")


def _parse_seconds(
    value: Any, name: str, conn_id: str, *, default: float, low: float, high: float, open_low: bool = True
) -> float:
    """A number of seconds in (low, high] (or [low, high] with ``open_low=False``)."""
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise _error(conn_id, f"{name} must be a number of seconds, got {str(value)[:40]!r}") from None
    above_low = seconds > low if open_low else seconds >= low
    if not (above_low and seconds <= high):
        bounds = f"more than {low:g} and at most {high:g}" if open_low else f"between {low:g} and {high:g}"
        raise _error(conn_id, f"{name} must be {bounds} seconds, got {seconds:g}")
    return seconds


def _parse_whole_number(value: Any, name: str, conn_id: str, *, default: int, low: int, high: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise _error(conn_id, f"{name} must be a whole number, got {str(value)[:40]!r}") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _error(conn_id, f"{name} must be {bounds}, got {number}")
    return number


def _parse_base_url(conn: Any, allow_insecure_http: bool, conn_id: str) -> str:
    """Accept ``https://h``, bare ``h`` (https), ``h:port`` or the port field; refuse anything else."""
    raw = (conn.host or "").strip() or DEFAULT_BASE_URL
    if _UNSAFE_CHARS.search(raw):
        raise _error(conn_id, "host contains whitespace or control characters")
    if "://" not in raw:
        schema = (getattr(conn, "schema", None) or "").strip().lower()
        raw = f"{schema if schema in ('http', 'https') else 'https'}://{raw}"
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _error(conn_id, f"host must use https:// (or http:// on loopback), got {scheme}://")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise _error(conn_id, f"host must be a plain URL like https://api.piriod.com, got {_masked_url(parts)!r}")
    try:
        port = parts.port
    except ValueError:
        raise _error(conn_id, f"host has an invalid port: {parts.netloc!r}") from None
    port = _merge_port(port, getattr(conn, "port", None), conn_id)
    if scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise _error(
            conn_id,
            f"plain http is only allowed for loopback hosts, got {parts.hostname!r}; use https:// "
            "or set extra allow_insecure_http=true if you accept sending the token unencrypted",
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _masked_url(parts: Any) -> str:
    """``scheme://host`` with user info, query and fragment shown as ``***``: they may hold the token."""
    userinfo = "***@" if "@" in parts.netloc else ""
    query = "?***" if parts.query else ""
    fragment = "#***" if parts.fragment else ""
    return f"{parts.scheme}://{userinfo}{parts.hostname or ''}{query}{fragment}"[:120]


def _merge_port(url_port: int | None, field_port: Any, conn_id: str) -> int | None:
    if field_port in (None, "", 0, "0"):  # Airflow's UI sends an empty port field as 0
        return url_port
    try:
        port = int(field_port)
    except (TypeError, ValueError):
        raise _error(conn_id, f"port must be a number, got {str(field_port)[:20]!r}") from None
    if not 0 < port < 65536:
        raise _error(conn_id, f"port must be between 1 and 65535, got {port}")
    if url_port is not None and url_port != port:
        raise _error(conn_id, f"host says port {url_port} but the port field says {port}")
    return port
