"""The ``piriod://`` asset URI: how a Piriod read is named, and the normalizer Airflow calls on it.

A read is named ``piriod://<API host>/<workspace>/<resource>``: the host (and port, unless 443 or
80) of the connection's API URL in one spelling (lowercase, IDNA, no trailing dot, IPv6 compressed),
the workspace (percent-encoded) and the registry name of the resource, e.g.
``piriod://api.piriod.com/acc_01H8XYZ123ABC/invoices``. Two connections to the same workspace name
the same dataset; the token is never part of the name. The operators' default outlets,
``piriod://<conn id>/<resource>``, are valid too: the conn id kept as written (case included), only
the characters a host cannot hold percent-encoded, and the resource as one path segment.

Airflow imports this module (through ``asset-uris`` in the provider info) wherever it builds an
Asset with the ``piriod`` scheme, so it stays light: no pydantic, no requests.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import SplitResult, quote, unquote, urlsplit

from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.resources import RESOURCES, Resource

SCHEME = "piriod"
SHAPE = "piriod://<API host>/<workspace>/<resource>"

#: ports a name leaves out: the defaults of https and http, the schemes an API URL may use
DEFAULT_PORTS = frozenset({443, 80})

#: what a conn id keeps as written in a default outlet's host; anything else is percent-encoded
_CONN_ID_SAFE = "_.-~!():"
_CONN_ID_HOST = re.compile(r"(?:[A-Za-z0-9_.~!():-]|%[0-9A-Fa-f]{2})+")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_AUTHORITY = re.compile(r"(\[[^\[\]]*\]|[^\[\]:]*)(?::([^:]*))?")
_ASCII_DIGITS = re.compile(r"[0-9]{1,5}")


class PiriodDatasetName(NamedTuple):
    """The parts of a ``piriod://`` URI: ``workspace`` is None in the ``piriod://<conn id>/<resource>`` form."""

    authority: str
    workspace: str | None
    resource: Resource


def dataset_uri(base_url: str, workspace: str, resource: Resource) -> str:
    """The URI naming ``resource`` of ``workspace`` on the API at ``base_url`` (a connection's API URL)."""
    try:
        parts = urlsplit(base_url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise PiriodInputError(f"the Piriod API URL has an invalid host or port; a dataset is named {SHAPE}") from None
    if not hostname:
        raise PiriodInputError(f"the Piriod API URL has no host; a dataset is named {SHAPE}")
    host = _ip_literal(hostname) if ":" in hostname else _host_name(hostname)
    return f"{SCHEME}://{_authority(host, port)}/{_segment(workspace)}/{resource.name}"


def default_outlet_uri(conn_id: str, resource: Resource) -> str:
    """``piriod://<conn id>/<resource>``, the operators' default outlet, for any conn id Airflow accepts."""
    return f"{SCHEME}://{quote(conn_id, safe=_CONN_ID_SAFE)}/{_outlet_path(resource)}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Airflow's normalizer for ``piriod://`` Assets: one spelling per host, each path segment encoded one way.

    Anything that is not ``piriod://<host>/[<workspace>/]<resource>`` is refused with a
    PiriodInputError (a ValueError, as Airflow expects). Errors never repeat user info.
    """
    return parse_uri(uri)[0]


def parse_uri(uri: SplitResult | str) -> tuple[SplitResult, PiriodDatasetName]:
    """The normalized URI and its parts; PiriodInputError naming what is wrong otherwise."""
    try:
        parts = urlsplit(uri) if isinstance(uri, str) else uri
    except ValueError:
        raise PiriodInputError(f"a {SCHEME}:// asset URI has a malformed host; use {SHAPE}") from None
    if parts.scheme.lower() != SCHEME:
        raise PiriodInputError(f"not a {SCHEME}:// URI (scheme {parts.scheme[:20]!r}); a Piriod dataset is {SHAPE}")
    if "@" in parts.netloc:
        raise PiriodInputError(
            f"a {SCHEME}:// asset URI must not carry user info (a workspace or token before '@'); use {SHAPE}"
        )
    if not parts.netloc:
        raise PiriodInputError(f"a {SCHEME}:// asset URI needs a host: {SHAPE}")
    if parts.query or parts.fragment:
        raise PiriodInputError(f"a {SCHEME}:// asset URI takes no query or fragment; use {SHAPE}")
    workspace, resource = _split_path(parts.path)
    if workspace is None:
        authority, path = _conn_id_host(parts.netloc), f"/{_outlet_path(resource)}"
    else:
        authority, path = _read_authority(parts.netloc), f"/{_segment(workspace)}/{resource.name}"
    normalized = parts._replace(scheme=SCHEME, netloc=authority, path=path, query="", fragment="")
    return normalized, PiriodDatasetName(authority, workspace, resource)


def _split_path(path: str) -> tuple[str | None, Resource]:
    """
    ``/<workspace>/<resource>`` whenever the segments after the first are a resource (a read);
    otherwise ``/<resource>``, a default outlet (its resource one segment, or two for ``reminders/rules``).
    """
    segments = path[1:].split("/") if path.startswith("/") else []
    if not segments or not all(segments):
        raise PiriodInputError(f"a {SCHEME}:// asset URI needs a path of non-empty segments: {SHAPE}")
    rest = "/".join(segments[1:])
    if rest in RESOURCES:
        return unquote(segments[0]), RESOURCES[rest]
    whole = unquote(segments[0]) if len(segments) == 1 else "/".join(segments)
    if len(segments) <= 2 and whole in RESOURCES:
        return None, RESOURCES[whole]
    raise PiriodInputError(
        f"a {SCHEME}:// asset URI must end in a Piriod resource ({SHAPE}, resource one of "
        f"{', '.join(sorted(RESOURCES))}); got the path {path[:80]!r}"
    )


def _outlet_path(resource: Resource) -> str:
    """The resource in a default outlet: as named, unless its two segments would read as workspace/resource."""
    tail = resource.name.partition("/")[2]
    return quote(resource.name, safe="") if tail in RESOURCES else resource.name


def _conn_id_host(netloc: str) -> str:
    """A default outlet's host: the conn id, no port and no case folding, its percent-encoding made canonical."""
    if not _CONN_ID_HOST.fullmatch(netloc):
        raise PiriodInputError(
            f"a {SCHEME}:// default outlet's host must be a connection id (percent-encoded); use {SHAPE} "
            f"or piriod://<conn id>/<resource>"
        )
    return quote(unquote(netloc), safe=_CONN_ID_SAFE)


def _read_authority(netloc: str) -> str:
    """A read's ``host[:port]`` in its one spelling; PiriodInputError for anything else."""
    match = _AUTHORITY.fullmatch(netloc)
    if match is None or match.group(1) in ("", "[]"):
        raise PiriodInputError(f"a {SCHEME}:// asset URI has a malformed host; use {SHAPE}")
    host_text, port_text = match.groups()
    host = _ip_literal(host_text[1:-1]) if host_text.startswith("[") else _host_name(host_text)
    return _authority(host, _port(port_text))


def _port(text: str | None) -> int | None:
    """A port of ASCII digits between 1 and 65535; None when empty or absent."""
    if not text:
        return None
    if not _ASCII_DIGITS.fullmatch(text.lstrip("0") or "0") or not 0 < int(text) < 65536:
        raise PiriodInputError(f"a {SCHEME}:// asset URI has an invalid port; use {SHAPE}")
    return int(text)


def _host_name(text: str) -> str:
    """A host name in one spelling: IDNA (punycode), lowercase, without the trailing dot of an absolute name."""
    name = unquote(text)
    name = name[:-1] if name.endswith(".") else name
    try:
        encoded = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        encoded = ""
    if not _HOST_NAME.fullmatch(encoded):
        raise PiriodInputError(f"a {SCHEME}:// asset URI has a malformed host name; use {SHAPE}")
    return encoded


def _ip_literal(text: str) -> str:
    """An IPv6 address, bracketed, in its compressed form (a zone id kept, its '%' encoded)."""
    try:
        address = ipaddress.IPv6Address(unquote(text))
    except ValueError:
        raise PiriodInputError(f"a {SCHEME}:// asset URI has a malformed IPv6 host; use {SHAPE}") from None
    return f"[{quote(str(address), safe=':')}]"


def _authority(host: str, port: int | None) -> str:
    """``host`` with its port, left out when it is a default (443 or 80)."""
    return f"{host}:{port}" if port is not None and port not in DEFAULT_PORTS else host


def _segment(value: str) -> str:
    """A workspace as one path segment: every reserved character percent-encoded."""
    return quote(value, safe="")
