"""PiriodReadOperator: any Piriod resource to XCom (or to an NDJSON file) for the next task.

PiriodCustomerOperator is the same operator on customers, with ``customer_id``/``customer_ids``. The
write operators (upsert, action, create) live in :mod:`airflow_provider_piriod.operators.writes` and
are importable from here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_piriod.compat import Asset, BaseOperator
from airflow_provider_piriod.connection import DEFAULT_CONN_ID
from airflow_provider_piriod.exceptions import PiriodInputError, PiriodNotFoundError
from airflow_provider_piriod.lineage_uri import default_outlet_uri
from airflow_provider_piriod.operators.writes import PiriodActionOperator, PiriodCreateOperator, PiriodUpsertOperator
from airflow_provider_piriod.protocol import (
    validate_max_workers,
    validate_object_id,
    validate_object_ids,
    validate_page_size,
)
from airflow_provider_piriod.resources import Resource, get_resource

# The hook (requests, pydantic models, transports), the lineage builders and the writers are imported
# where they are used, in the task, so a DAG file with many tasks parses at the cost of EmptyOperators.
if TYPE_CHECKING:
    from airflow_provider_piriod.compat import Context
    from airflow_provider_piriod.hooks.piriod import PiriodHook

CUSTOMERS = "customers"
__all__ = [
    "PiriodActionOperator",
    "PiriodCreateOperator",
    "PiriodCustomerOperator",
    "PiriodReadOperator",
    "PiriodUpsertOperator",
    "customers_asset",
    "piriod_asset",
]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def piriod_asset(piriod_conn_id: str, resource: str) -> Asset:
    """The Asset a PiriodReadOperator updates by default: ``piriod://<conn id>/<resource>``."""
    return Asset(default_outlet_uri(piriod_conn_id, get_resource(resource)))


def customers_asset(piriod_conn_id: str = DEFAULT_CONN_ID) -> Asset:
    """The Asset a PiriodCustomerOperator updates by default: ``piriod://<conn id>/customers``."""
    return piriod_asset(piriod_conn_id, CUSTOMERS)


class PiriodReadOperator(BaseOperator):
    """
    Retrieve objects of any Piriod resource and return their JSON (pushed to XCom as ``return_value``).

    Give exactly one of:

    * ``object_id``: one object; returns its JSON object.
    * ``object_ids``: many objects, fetched concurrently; returns a list in input order.
    * ``filters``: every object matching Piriod filters (``{}`` = all); returns a list.

    Values are the JSON Piriod sent, key for key; an amount with more than 15 significant digits is a
    ``decimal.Decimal`` (see :mod:`airflow_provider_piriod.operators.xcom` for how XCom carries it).
    With ``output_path`` (any ObjectStoragePath URI: ``file://...``, ``s3://...``) the objects are
    written there as NDJSON, page by page, and the return value is ``{"path": ..., "count": ...}``;
    the file appears under its final name only when the task succeeds. A failing task returns
    nothing, so no partial result reaches XCom.

    The task updates the Asset ``piriod://<piriod_conn_id>/<resource>`` on success, so downstream
    DAGs can be scheduled on it; pass ``outlets=[...]`` to choose others (or ``[]`` for none).

    :param resource: the Piriod resource, e.g. ``"invoices"``, ``"payments"`` (checked when the DAG is parsed).
    :param object_id: id of one object (templated).
    :param object_ids: list of ids (templated; an upstream ``XComArg`` works).
    :param filters: Piriod list filters, e.g. ``{"date__gte": "{{ data_interval_start | ds }}"}`` (templated).
    :param ignore_missing: leave out ids Piriod does not know (a single missing id returns ``None``)
        instead of failing.
    :param output_path: write NDJSON here and return ``{"path", "count"}`` (templated).
    :param max_workers: concurrent requests: ids for ``object_ids``, pages for ``filters`` (1 to 64;
        1 reads pages one after another by following ``next``).
    :param page_size: objects per list request for ``filters`` (1 to 100).
    :param piriod_conn_id: the ``piriod`` connection (templated).
    :param test_mode: override the connection's ``test_mode``.
    """

    template_fields: Sequence[str] = ("object_id", "object_ids", "filters", "output_path", "piriod_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"object_ids": "json", "filters": "json"}
    ui_color = "#e8f4fd"

    #: how this operator names its id arguments in messages (a subclass may call them otherwise)
    id_argument = "object_id"
    ids_argument = "object_ids"

    def __init__(
        self,
        *,
        resource: str,
        object_id: str | int | None = None,
        object_ids: Sequence[str | int] | None = None,
        filters: Mapping[str, Any] | None = None,
        ignore_missing: bool = False,
        output_path: str | None = None,
        max_workers: int = 8,
        page_size: int = 100,
        piriod_conn_id: str = DEFAULT_CONN_ID,
        test_mode: bool | None = None,
        **kwargs: Any,
    ) -> None:
        spec = get_resource(resource)
        self._check_one_mode(spec, object_id, object_ids, filters)
        kwargs.setdefault("outlets", [piriod_asset(piriod_conn_id, spec.name)])
        super().__init__(**kwargs)
        self.resource = spec.name
        self.object_id = object_id
        self.object_ids = object_ids
        self.filters = filters
        self.ignore_missing = ignore_missing
        self.output_path = output_path
        self.max_workers = validate_max_workers(max_workers)
        self.page_size = validate_page_size(page_size)
        self.piriod_conn_id = piriod_conn_id
        self.test_mode = test_mode

    def _check_one_mode(self, spec: Resource, object_id: Any, object_ids: Any, filters: Any) -> None:
        names = (self.id_argument, self.ids_argument, "filters")
        given = [name for name, value in zip(names, (object_id, object_ids, filters), strict=True) if value is not None]
        if len(given) != 1:
            raise PiriodInputError(
                f"{type(self).__name__} needs exactly one of {names[0]}, {names[1]} or filters "
                f"(filters={{}} means all {spec.label}s); got {' and '.join(given) if given else 'none of them'}"
            )

    @cached_property
    def hook(self) -> PiriodHook:
        from airflow_provider_piriod.hooks.piriod import PiriodHook

        return PiriodHook(self.piriod_conn_id, test_mode=self.test_mode)

    @property
    def spec(self) -> Resource:
        return get_resource(self.resource)

    def execute(self, context: Context) -> Any:
        from airflow_provider_piriod.operators.ndjson import write_ndjson
        from airflow_provider_piriod.operators.xcom import for_xcom

        started = time.monotonic()
        if self.output_path:
            path, count = write_ndjson(self.output_path, self._objects_json())
            self._written_path = path  # for lineage
            self._log_summary(count, started, written_to=path)
            return {"path": path, "count": count}
        if self.object_id is not None:
            one = self._one()
            self._log_summary(int(one is not None), started)
            return for_xcom(one, where=self.spec.label)
        objects = list(self._objects_json())
        self._log_summary(len(objects), started)
        return for_xcom(objects, where=f"{self.spec.label}s")

    def _log_summary(self, count: int, started: float, written_to: str | None = None) -> None:
        """The task's one INFO line: what was read, in how many pages and requests, how long, and through what."""
        tally = self.hook.tally
        if self.object_id is not None:
            mode = self.id_argument
        elif self.object_ids is not None:
            mode = f"{self.ids_argument}, {len(self.object_ids)} asked"
        else:
            mode = f"filters, {_plural(tally.pages, 'page')}"
        self.log.info(
            "Read %d Piriod %s (%s) with %s%s in %.2f s through connection %r%s",
            count,
            self.spec.label if count == 1 else f"{self.spec.label}s",
            mode,
            _plural(tally.requests, "request"),
            f" ({tally.retries} retried)" if tally.retries else "",
            time.monotonic() - started,
            self.piriod_conn_id,
            f"; wrote them to {written_to}" if written_to else "",
        )

    def _one(self) -> dict[str, Any] | None:
        spec = self.spec
        object_id = validate_object_id(self.object_id, self.id_argument, integers=spec.integer_ids)
        try:
            return self.hook.get_object(spec.name, object_id).to_json()
        except PiriodNotFoundError:
            if not self.ignore_missing:
                raise
            self.log.warning("Piriod %s %r not found; returning None (ignore_missing=True)", spec.label, object_id)
            return None

    def _objects_json(self) -> Iterable[dict[str, Any]]:
        """The objects as JSON; lazily, one page at a time, in filters mode."""
        if self.object_id is not None:
            one = self._one()
            return [one] if one is not None else []
        spec = self.spec
        if self.object_ids is not None:
            ids = validate_object_ids(self.object_ids, self.ids_argument, integers=spec.integer_ids)
            found = self.hook.get_objects(
                spec.name, ids, max_workers=self.max_workers, ignore_missing=self.ignore_missing
            )
            self.log.debug("Retrieved %d of %d Piriod %ss by id", len(found), len(ids), spec.label)
            return [item.to_json() for item in found]
        return self.hook.iter_object_json(
            spec.name, self.filters, page_size=self.page_size, max_workers=self.max_workers
        )

    # OpenLineage (see airflow_provider_piriod.lineage): built from what execute resolved, no request

    def _lineage(self, output: str | None) -> Any:
        from airflow_provider_piriod.lineage import operator_lineage

        return operator_lineage(self, output=output)

    def get_openlineage_facets_on_start(self) -> Any:
        """The file the task will write; the Piriod input is known once a read has resolved the connection."""
        return self._lineage(self.output_path)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The Piriod resource read (API host, workspace, resource, schema) and the file written."""
        return self._lineage(getattr(self, "_written_path", None))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The Piriod resource read, without the file: a failed task leaves no file behind."""
        return self._lineage(None)


class PiriodCustomerOperator(PiriodReadOperator):
    """
    Retrieve Piriod customers and return their JSON: :class:`PiriodReadOperator` on ``customers``.

    Give exactly one of ``customer_id`` (returns the customer's JSON object), ``customer_ids``
    (a list in input order, fetched concurrently) or ``filters`` (every match; ``{}`` = all).
    Everything else (``output_path``, ``ignore_missing``, ``max_workers``, ``page_size``, the
    Asset ``piriod://<piriod_conn_id>/customers``) is as for :class:`PiriodReadOperator`.

    :param customer_id: id of one customer (templated).
    :param customer_ids: list of ids (templated; an upstream ``XComArg`` works).
    :param filters: Piriod list filters, e.g. ``{"created__gte": "{{ data_interval_start | ts }}"}`` (templated).
    """

    template_fields: Sequence[str] = ("customer_id", "customer_ids", "filters", "output_path", "piriod_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"customer_ids": "json", "filters": "json"}

    id_argument = "customer_id"
    ids_argument = "customer_ids"

    def __init__(
        self,
        *,
        customer_id: str | None = None,
        customer_ids: list[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource=CUSTOMERS, object_id=customer_id, object_ids=customer_ids, filters=filters, **kwargs)

    # the customer names are the generic fields under another name, so templating either renders both
    @property
    def customer_id(self) -> str | int | None:  # the generic field, as CustomerCondition.customer_id
        return self.object_id

    @customer_id.setter
    def customer_id(self, value: str | None) -> None:
        self.object_id = value

    @property
    def customer_ids(self) -> Sequence[str | int] | None:
        return self.object_ids

    @customer_ids.setter
    def customer_ids(self, value: list[str] | None) -> None:
        self.object_ids = value
