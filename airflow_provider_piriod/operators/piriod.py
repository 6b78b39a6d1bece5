"""PiriodCustomerOperator: Piriod customers to XCom (or to an NDJSON file) for the next task."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_piriod.compat import Asset, BaseOperator, ObjectStoragePath
from airflow_provider_piriod.exceptions import PiriodNotFoundError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.protocol import validate_max_workers, validate_page_size

if TYPE_CHECKING:
    from airflow_provider_piriod.compat import Context

MODES = ("customer_id", "customer_ids", "filters")


def customers_asset(piriod_conn_id: str = PiriodHook.default_conn_name) -> Asset:
    """The Asset a PiriodCustomerOperator updates by default: ``piriod://<conn id>/customers``."""
    return Asset(f"piriod://{piriod_conn_id}/customers")


class PiriodCustomerOperator(BaseOperator):
    """
    Retrieve Piriod customers and return their JSON (pushed to XCom as ``return_value``).

    Give exactly one of:

    * ``customer_id``: one customer; returns its JSON object.
    * ``customer_ids``: many customers, fetched concurrently; returns a list in input order.
    * ``filters``: every customer matching Piriod filters (``{}`` = all); returns a list.

    Values are the JSON Piriod sent, key for key. With ``output_path`` (any ObjectStoragePath
    URI: ``file://...``, ``s3://...``) customers are written there as NDJSON, page by page, and the
    return value is ``{"path": ..., "count": ...}``; the file appears under its final name only
    when the task succeeds. A failing task returns nothing, so no partial result reaches XCom.

    The task updates the Asset ``piriod://<piriod_conn_id>/customers`` on success, so downstream
    DAGs can be scheduled on it; pass ``outlets=[...]`` to choose others (or ``[]`` for none).

    :param customer_id: id of one customer (templated).
    :param customer_ids: list of ids (templated; an upstream ``XComArg`` works).
    :param filters: Piriod list filters, e.g. ``{"created__gte": "{{ data_interval_start | ts }}"}`` (templated).
    :param ignore_missing: leave out ids Piriod does not know (a single missing id returns ``None``)
        instead of failing.
    :param output_path: write NDJSON here and return ``{"path", "count"}`` (templated).
    :param max_workers: concurrent requests: ids for ``customer_ids``, pages for ``filters`` (1 to 64;
        1 reads pages one after another by following ``next``).
    :param page_size: customers per list request for ``filters`` (1 to 100).
    :param piriod_conn_id: the ``piriod`` connection (templated).
    :param test_mode: override the connection's ``test_mode``.
    """

    template_fields: Sequence[str] = ("customer_id", "customer_ids", "filters", "output_path", "piriod_conn_id")
    template_fields_renderers = {"customer_ids": "json", "filters": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        customer_id: str | None = None,
        customer_ids: list[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        ignore_missing: bool = False,
        output_path: str | None = None,
        max_workers: int = 8,
        page_size: int = 100,
        piriod_conn_id: str = PiriodHook.default_conn_name,
        test_mode: bool | None = None,
        **kwargs: Any,
    ) -> None:
        given = [name for name, value in zip(MODES, (customer_id, customer_ids, filters)) if value is not None]
        if len(given) != 1:
            raise ValueError(
                "PiriodCustomerOperator needs exactly one of customer_id, customer_ids or filters "
                f"(filters={{}} means all customers); got {' and '.join(given) if given else 'none of them'}"
            )
        kwargs.setdefault("outlets", [customers_asset(piriod_conn_id)])
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.customer_ids = customer_ids
        self.filters = filters
        self.ignore_missing = ignore_missing
        self.output_path = output_path
        self.max_workers = validate_max_workers(max_workers)
        self.page_size = validate_page_size(page_size)
        self.piriod_conn_id = piriod_conn_id
        self.test_mode = test_mode

    @cached_property
    def hook(self) -> PiriodHook:
        return PiriodHook(self.piriod_conn_id, test_mode=self.test_mode)

    def execute(self, context: Context) -> Any:
        if self.output_path:
            return self._write_ndjson(self.output_path, self._customers_json())
        if self.customer_id is not None:
            return self._one()
        return list(self._customers_json())

    def _one(self) -> dict[str, Any] | None:
        try:
            return self.hook.get_customer(self.customer_id).to_json()
        except PiriodNotFoundError:
            if not self.ignore_missing:
                raise
            self.log.warning("Piriod customer %r not found; returning None (ignore_missing=True)", self.customer_id)
            return None

    def _customers_json(self) -> Iterable[dict[str, Any]]:
        """Customers as JSON objects; lazily, one page at a time, in filters mode."""
        if self.customer_id is not None:
            one = self._one()
            return [one] if one is not None else []
        if self.customer_ids is not None:
            customers = self.hook.get_customers(
                self.customer_ids, max_workers=self.max_workers, ignore_missing=self.ignore_missing
            )
            self.log.info("Retrieved %d of %d Piriod customers by id", len(customers), len(self.customer_ids))
            return [customer.to_json() for customer in customers]
        return self.hook.iter_customer_json(self.filters, page_size=self.page_size, max_workers=self.max_workers)

    def _write_ndjson(self, output_path: str, customers: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Stream NDJSON to a temporary name beside ``output_path``, then move it into place."""
        final = ObjectStoragePath(output_path)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.parent / f".{final.name}.{uuid.uuid4().hex}.partial"
        count = 0
        try:
            with partial.open("wb") as stream:
                for customer in customers:
                    stream.write(json.dumps(customer, ensure_ascii=False).encode() + b"\n")
                    count += 1
            partial.replace(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self.log.info("Wrote %d Piriod customers to %s", count, final)
        return {"path": str(final), "count": count}
