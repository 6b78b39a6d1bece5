"""Lineage of Piriod reads and writes: OpenLineage datasets and facets, and the hook-level lineage reporter.

The operators' OpenLineage methods and Airflow's ``asset-uris`` converter build their datasets here;
PiriodHook reports each read to Airflow's hook-lineage collector here. Nothing here sends a request:
names come from what a read already resolved. OpenLineage is imported inside the functions that
need it, so the provider works without the openlineage provider installed.
"""

from __future__ import annotations

import logging
import os
import re
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Union

from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.lineage_uri import dataset_uri, parse_uri

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, SchemaDatasetFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_piriod.connection import PiriodSettings
    from airflow_provider_piriod.hooks.piriod import PiriodHook
    from airflow_provider_piriod.operators.piriod import PiriodReadOperator
    from airflow_provider_piriod.resources import Resource

log = logging.getLogger(__name__)

#: nesting depth of model fields described in the schema facet (a customer's country's fields: depth 2)
SCHEMA_DEPTH = 2

_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: bool is an int
    (int, "integer"),
    (float, "double"),
    (Decimal, "decimal"),
    (str, "string"),
    (datetime, "timestamp"),  # before date: datetime is a date
    (date, "date"),
    (dict, "object"),
)


# ----------------------------------------------------------------------------- hook-level lineage


@dataclass(frozen=True)
class PiriodReadContext:
    """The context hook lineage files a Piriod read under: one per connection and dataset, whatever the hook."""

    conn_id: str
    uri: str


#: Airflow keys collected inputs by id(context): one object per (conn id, URI) makes repeated reads one entry
_READ_CONTEXTS: dict[tuple[str, str], PiriodReadContext] = {}


def read_context(conn_id: str, uri: str) -> PiriodReadContext:
    """The one context object of reads of ``uri`` through ``conn_id`` in this process."""
    return _READ_CONTEXTS.setdefault((conn_id, uri), PiriodReadContext(conn_id, uri))


def report_read(hook: PiriodHook, settings: PiriodSettings, resource: Resource, *, written: bool = False) -> None:
    """Tell Airflow's hook-lineage collector that ``hook`` read (or ``written``: wrote) ``resource``.

    A failure is logged, never raised: lineage is a side channel.
    """
    try:
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        uri = dataset_uri(settings.base_url, settings.workspace, resource)
        context = read_context(hook.piriod_conn_id, uri)
        collector = get_hook_lineage_collector()
        (collector.add_output_asset if written else collector.add_input_asset)(context=context, uri=uri)
    except Exception as exc:  # the read or write goes on whatever happens here
        use = "write to" if written else "read of"
        log.warning("Piriod %s %s not reported to hook lineage: %s", use, resource.name, type(exc).__name__)


# ----------------------------------------------------------------------------- OpenLineage


def operator_lineage(operator: Any, *, output: Any, written: bool = False) -> OperatorLineage:
    """The operator's read (or, ``written``, its write) of Piriod as OpenLineage, once a request resolved the
    connection; ``output`` is a file it wrote, if any."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    settings = settings_resolved_by(operator)
    piriod = [input_dataset(settings, operator.spec)] if settings is not None else []
    files = [file_dataset(output)] if output else []
    if written:
        return OperatorLineage(inputs=[], outputs=piriod + files)
    return OperatorLineage(inputs=piriod, outputs=files)


def settings_resolved_by(operator: PiriodReadOperator) -> PiriodSettings | None:
    """The connection settings the operator's reads resolved; None before any read (nothing is looked up)."""
    hook = operator.__dict__.get("hook")  # the cached_property, only if execute built it
    return hook.__dict__.get("settings") if hook is not None else None


def input_dataset(settings: PiriodSettings, resource: Resource) -> Dataset:
    """The OpenLineage dataset of ``resource`` in the settings' workspace, with its schema facet."""
    return openlineage_dataset(dataset_uri(settings.base_url, settings.workspace, resource))


def openlineage_dataset(uri: str) -> Dataset:
    """``piriod://<host>/<path>`` as namespace ``piriod://<host>`` and name ``<path>``, with a schema facet."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    normalized, parts = parse_uri(uri)
    schema = schema_facet(parts.resource)
    return Dataset(
        namespace=f"{normalized.scheme}://{normalized.netloc}",
        name=normalized.path.lstrip("/"),
        facets={"schema": schema} if schema is not None else {},
    )


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Dataset | None:
    """
    Airflow's ``to_openlineage_converter`` for ``piriod://`` Assets (hook lineage, inlets, outlets).

    None for a default outlet ``piriod://<conn id>/<resource>`` (it names no workspace, so no dataset)
    and for a malformed URI Airflow 2.11 kept with a warning.
    """
    try:
        normalized, parts = parse_uri(asset.uri)
    except PiriodInputError:
        return None
    return openlineage_dataset(normalized.geturl()) if parts.workspace is not None else None


#: ``scheme://`` at the start of an output path; without one, the path is a local file
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def file_dataset(path: Any) -> Dataset:
    """
    The output file as OpenLineage names files: namespace ``file`` and the absolute path, or
    ``scheme://host[:port]`` and the key (never user info, a conn id or a password).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from airflow_provider_piriod.operators.ndjson import resolve_output_path

    location = resolve_output_path(path)
    if location[:5].lower() == "file:":
        host, local = _file_url_parts(location[5:])
        return Dataset(namespace=f"file://{host}" if host else "file", name=os.path.normpath(local))
    if not _URL_SCHEME.match(location):
        return Dataset(namespace="file", name=location)
    scheme, _, rest = location.partition("://")
    authority, _, key = rest.partition("/")
    return Dataset(namespace=f"{scheme.lower()}://{_host_and_port(authority)}", name=key)


def _file_url_parts(rest: str) -> tuple[str, str]:
    """What follows ``file:`` as (host, path): ``///p`` and ``/p`` are local; ``//host/p`` names a host."""
    if not rest.startswith("//"):
        return "", rest
    host, _, path = rest[2:].partition("/")
    return _host_and_port(host), f"/{path}"


def _host_and_port(authority: str) -> str:
    """``host[:port]`` of an authority, lowercase: user info (``user:password@``, ``conn_id@``) dropped."""
    hostport = authority.rpartition("@")[2].lower()
    host, colon, port = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if not colon or "]" in port:
        return hostport
    return f"{host}:{port}" if port.isascii() and port.isdigit() else host


# ----------------------------------------------------------------------------- schema facet


def schema_facet(resource: Resource) -> SchemaDatasetFacet | None:
    """The resource's model fields as a schema facet; None for resources read without a typed model."""
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet

    from airflow_provider_piriod.models import PiriodObject

    model = resource.model
    if model is PiriodObject:
        return None
    return SchemaDatasetFacet(fields=_fields_of(model, SCHEMA_DEPTH))


def _fields_of(model: Any, depth: int) -> list[Any]:
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacetFields

    fields = []
    for name, info in model.model_fields.items():
        kinds, nested = _describe(info.annotation)
        fields.append(
            SchemaDatasetFacetFields(
                name=info.alias or name,
                type="|".join(kinds) or None,
                description=info.description,
                fields=_fields_of(nested, depth - 1) if nested is not None and depth > 1 else [],
            )
        )
    return fields


def _describe(annotation: Any) -> tuple[list[str], Any]:
    """The type names of an annotation (``string|struct``) and the one nested model it holds, if any."""
    from airflow_provider_piriod.models import PiriodModel

    kinds: list[str] = []
    nested = None
    for member in _members(annotation):
        origin = typing.get_origin(member) or member
        if isinstance(origin, type) and issubclass(origin, PiriodModel):
            kind, nested = "struct", member
        elif origin in (list, tuple):
            kind = "array"
            inner = [arg for arg in typing.get_args(member) if arg is not Ellipsis]
            if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], PiriodModel):
                nested = inner[0]
        else:
            kind = _type_name(origin)
        if kind not in kinds:
            kinds.append(kind)
    return kinds, nested


def _type_name(origin: Any) -> str:
    """The facet's name for a plain type (``string``, ``decimal``, ...); ``any`` for what it cannot name."""
    if isinstance(origin, type):
        for base, label in _TYPE_NAMES:
            if issubclass(origin, base):
                return label
    return "any"


def _members(annotation: Any) -> list[Any]:
    """A union's members without None (Annotated unwrapped); any other annotation alone."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in typing.get_args(annotation) if arg is not type(None) for member in _members(arg)]
    return [annotation]
