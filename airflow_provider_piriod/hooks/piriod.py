"""PiriodHook and PiriodAsyncHook: the public API for reading and writing any Piriod resource.

The hooks validate arguments, resolve the connection and turn JSON into models; everything about
the wire (throttle, deadlines, retries, pages, errors) is the transport's, in
:mod:`airflow_provider_piriod.transport`, and what makes a write exactly-once is in
:mod:`airflow_provider_piriod.hooks.writes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, TypedDict, cast

import requests

from airflow_provider_piriod.compat import BaseHook, amask_secret, mask_secret
from airflow_provider_piriod.connection import DEFAULT_CONN_ID, PiriodSettings, settings_from_connection
from airflow_provider_piriod.exceptions import PiriodResponseError
from airflow_provider_piriod.filter_checks import filter_problems, problems_message
from airflow_provider_piriod.hooks.writes import Writer, check_data, check_write_key, task_identity
from airflow_provider_piriod.lineage import report_read
from airflow_provider_piriod.models import Customer, PiriodModel
from airflow_provider_piriod.protocol import (
    filter_params,
    retry_delay,
    validate_max_workers,
    validate_object_id,
    validate_object_ids,
    validate_page_size,
)
from airflow_provider_piriod.resources import Resource, get_resource
from airflow_provider_piriod.transport.aio import AsyncPiriodTransport
from airflow_provider_piriod.redaction import redact
from airflow_provider_piriod.transport.calls import Tally
from airflow_provider_piriod.transport.sync import PiriodTransport
from airflow_provider_piriod.transport.throttle import Throttle

CUSTOMERS = "customers"


class _Overrides(TypedDict):
    """The hook arguments that override the connection's extras (see :func:`settings_from_connection`)."""

    test_mode: bool | str | None
    timeout: float | None
    max_retries: int | None


def _connection_type_info() -> dict[str, Any]:
    from airflow_provider_piriod import get_provider_info

    (info,) = get_provider_info()["connection-types"]
    return info


class _PiriodHookBase(BaseHook):
    """What the sync hook and its async twin share: the connection, its overrides and the backoff timing."""

    conn_name_attr = "piriod_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "piriod"
    hook_name = "Piriod"

    #: first backoff step in seconds; doubles per attempt, with jitter
    retry_base_delay: float = 0.5
    #: longest backoff step in seconds
    retry_max_delay: float = 30.0
    #: longest wait a ``Retry-After`` header can impose, in seconds
    retry_after_max: float = 60.0

    def __init__(
        self,
        piriod_conn_id: str = default_conn_name,
        *,
        test_mode: bool | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__()
        self.piriod_conn_id = piriod_conn_id
        self._overrides: _Overrides = {"test_mode": test_mode, "timeout": timeout, "max_retries": max_retries}
        self._filter_warnings_given: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(piriod_conn_id={self.piriod_conn_id!r})"

    def _settings_from(self, conn: Any) -> PiriodSettings:
        return settings_from_connection(conn, **self._overrides, log=self.log)

    def _check_filters(self, settings: PiriodSettings, resource: Resource, filters: Mapping[str, Any] | None) -> None:
        """Warn (once per hook and message) about filters Piriod would answer silently: see filter_checks."""
        if not settings.warn_unknown_filters:
            return
        problems = filter_problems(resource, filters)
        message = problems_message(resource, problems, settings.conn_id) if problems else ""
        if message and message not in self._filter_warnings_given:
            self._filter_warnings_given.add(message)
            self.log.warning("%s", message)

    def _retry_delay(self, attempt: int, exc: Exception) -> float:
        return retry_delay(
            attempt,
            base=self.retry_base_delay,
            cap=self.retry_max_delay,
            retry_after=getattr(exc, "retry_after", None),
            retry_after_cap=self.retry_after_max,
        )


def to_model(resource: Resource, data: dict[str, Any]) -> PiriodModel:
    """The typed model of one object; an object that does not fit it is a PiriodResponseError, never pydantic's."""
    from pydantic import ValidationError

    try:
        return resource.model.from_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'object'}: {error['msg']}" for error in exc.errors()[:5]
        )
        raise PiriodResponseError(
            f"Piriod GET {resource.path}: a {resource.label} does not have the documented shape ({problems[:400]})",
            method="GET",
            path=resource.path,
        ) from None


class PiriodHook(_PiriodHookBase):
    """
    Read Piriod resources with the token and workspace of an Airflow connection.

    Nothing is looked up or sent until a method is called. Resources are named as in
    :data:`airflow_provider_piriod.resources.RESOURCES` (``"invoices"``, ``"payments"``, ...); the
    customer methods are the same calls with ``resource="customers"``.

    :param piriod_conn_id: Airflow connection of type ``piriod``.
    :param test_mode: override the connection's ``test_mode`` extra.
    :param timeout: override the connection's per-request deadline, in seconds.
    :param max_retries: override the connection's retry count for transient failures.
    """

    def __init__(
        self,
        piriod_conn_id: str = _PiriodHookBase.default_conn_name,
        *,
        test_mode: bool | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(piriod_conn_id, test_mode=test_mode, timeout=timeout, max_retries=max_retries)
        self._throttle = Throttle()

    # ------------------------------------------------------------------ connection form (Airflow 2.x UI)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields for UIs that ask the hook (Airflow 2.x).

        Airflow 3 reads the same from the provider info, the single source of both.
        """
        behaviour = _connection_type_info()["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields for UIs that ask the hook (Airflow 2.x); UI imports stay in here."""
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        widgets: dict[str, Any] = {}
        for name, field in _connection_type_info()["conn-fields"].items():
            schema = field["schema"]
            kinds = schema["type"]
            label, description, default = lazy_gettext(field["label"]), field.get("description"), schema.get("default")
            if "boolean" in kinds:
                widgets[name] = BooleanField(label, description=description, default=default)
            elif "integer" in kinds:
                widgets[name] = IntegerField(
                    label,
                    description=description,
                    default=default,
                    validators=[Optional(), NumberRange(min=schema.get("minimum"))],
                )
            else:
                widgets[name] = StringField(label, description=description, default=str(default))
        return widgets

    # ------------------------------------------------------------------ connection and session

    @cached_property
    def settings(self) -> PiriodSettings:
        """The validated connection (fetched once); the token is masked in Airflow's logs from here on."""
        conn = self.get_connection(self.piriod_conn_id)
        if isinstance(conn.password, str) and conn.password:
            mask_secret(conn.password)  # before anything about the connection is logged
        return self._settings_from(conn)

    @cached_property
    def _transport(self) -> PiriodTransport:
        return PiriodTransport(self.settings, log=self.log, retry_delay=self._retry_delay, throttle=self._throttle)

    def get_conn(self) -> requests.Session:
        """The pooled session with Piriod's headers set; built once per hook."""
        return self._transport.session

    @property
    def tally(self) -> Tally:
        """Requests, pages and retries of every call this hook has made: what a task's summary line reports."""
        return self._transport.tally

    # ------------------------------------------------------------------ any resource

    def get_object(self, resource: str, object_id: str | int) -> PiriodModel:
        """Retrieve one object; PiriodNotFoundError if it does not exist in this workspace and mode."""
        return self._get_object(get_resource(resource), object_id, "object_id")

    def get_objects(
        self, resource: str, object_ids: Sequence[str | int], *, max_workers: int = 8, ignore_missing: bool = False
    ) -> list[PiriodModel]:
        """
        Retrieve many objects concurrently over one pooled session, in input order.

        Every id is checked before the first request. A repeated id is fetched once and returned
        at each of its positions. With ``ignore_missing`` unknown ids are left out; otherwise the
        first failure stops the requests not yet sent and is raised.
        """
        return self._get_objects(get_resource(resource), object_ids, "object_ids", max_workers, ignore_missing)

    def iter_objects(
        self, resource: str, filters: Mapping[str, Any] | None = None, *, page_size: int = 100, max_workers: int = 1
    ) -> Iterator[PiriodModel]:
        """
        Yield every object matching ``filters``, in Piriod's order, each once.

        With ``max_workers=1`` (the default) pages are read one after another by following
        ``next``. With more, the first page's ``count`` tells how many pages there are and up to
        ``max_workers`` of them are fetched at once; they are still yielded in order, and only a
        bounded window of pages is held in memory.
        """
        spec = get_resource(resource)
        items = self._iter_json(spec, filters, page_size, max_workers)
        return (to_model(spec, item) for item in items)

    def iter_object_json(
        self, resource: str, filters: Mapping[str, Any] | None = None, *, page_size: int = 100, max_workers: int = 1
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`iter_objects`, but the JSON objects as Piriod sent them: the fastest way to export."""
        return self._iter_json(get_resource(resource), filters, page_size, max_workers)

    def list_objects(self, resource: str, filters: Mapping[str, Any] | None = None, **kwargs: Any) -> list[PiriodModel]:
        """All objects matching ``filters`` as a list (see :meth:`iter_objects`)."""
        return list(self.iter_objects(resource, filters, **kwargs))

    def count_objects(self, resource: str, filters: Mapping[str, Any] | None = None) -> int:
        """How many objects match ``filters``, in one small request."""
        spec = get_resource(resource)
        params = filter_params(filters)
        self._check_filters(self.settings, spec, filters)
        return self._transport.count(spec, params)

    # ------------------------------------------------------------------ customers (the same calls)

    def get_customer(self, customer_id: str) -> Customer:
        """Retrieve one customer; raises PiriodNotFoundError if it does not exist in this workspace and mode."""
        return self._get_object(get_resource(CUSTOMERS), customer_id, "customer_id")

    def get_customers(
        self, customer_ids: list[str], *, max_workers: int = 8, ignore_missing: bool = False
    ) -> list[Customer]:
        """Retrieve many customers concurrently, in input order (see :meth:`get_objects`)."""
        return self._get_objects(get_resource(CUSTOMERS), customer_ids, "customer_ids", max_workers, ignore_missing)

    def iter_customers(
        self, filters: Mapping[str, Any] | None = None, *, page_size: int = 100, max_workers: int = 1
    ) -> Iterator[Customer]:
        """Yield every customer matching ``filters`` (see :meth:`iter_objects`)."""
        # the customers resource builds Customer models
        return cast(
            "Iterator[Customer]", self.iter_objects(CUSTOMERS, filters, page_size=page_size, max_workers=max_workers)
        )

    def iter_customer_json(
        self, filters: Mapping[str, Any] | None = None, *, page_size: int = 100, max_workers: int = 1
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`iter_customers`, but the JSON objects as Piriod sent them, without building models."""
        return self.iter_object_json(CUSTOMERS, filters, page_size=page_size, max_workers=max_workers)

    def list_customers(self, filters: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Customer]:
        """All customers matching ``filters`` as a list (see :meth:`iter_customers`)."""
        return cast("list[Customer]", self.list_objects(CUSTOMERS, filters, **kwargs))  # Customer models, as above

    def count_customers(self, filters: Mapping[str, Any] | None = None) -> int:
        """How many customers match ``filters``, in one small request."""
        return self.count_objects(CUSTOMERS, filters)

    # ------------------------------------------------------------------ writes (see hooks/writes.py)

    @cached_property
    def _writer(self) -> Writer:
        return Writer(self._transport, self.settings, self.log)

    def create_object(
        self, resource: str, data: Mapping[str, Any], *, write_key: str | None = None, look_first: bool | None = None
    ) -> dict[str, Any]:
        """
        Create one object, exactly once, and return its JSON.

        The object carries ``write_key`` in ``metadata["airflow_write_key"]`` (default: derived from the running
        task and this create's place in it, so a retried task computes the same key). If the answer is lost
        after the request left, the object is looked up by that key and sent again only if it is not there;
        with ``look_first`` (default: when the task is a retry) it is looked up before the first send too.
        """
        spec = get_resource(resource)
        body = check_data(data)
        key = None if write_key is None else check_write_key(write_key)
        self._writer.check_allowed(spec, "create")
        identity = task_identity()
        if key is None:
            key = self._writer.next_default_key(spec, identity.parts if identity else None)
        look = (identity is not None and identity.retried) if look_first is None else bool(look_first)
        report_read(self, self.settings, spec, written=True)
        return self._writer.create(spec, body, key, look_first=look)

    def update_object(self, resource: str, object_id: str | int, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH the given fields of one object and return it as Piriod answered; retried like a read."""
        spec = get_resource(resource)
        checked_id = validate_object_id(object_id, integers=spec.integer_ids)
        body = check_data(data)
        self._writer.check_allowed(spec, "update")
        report_read(self, self.settings, spec, written=True)
        return cast("dict[str, Any]", self._writer.update(spec, checked_id, body))

    def run_action(
        self, resource: str, object_id: str | int, action: str, data: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """
        Run one of the resource's registered actions (``finalize``, ``pause``, ...) once; return the object.

        An object already in the action's target state is returned as it is, nothing sent; a lost answer
        is resolved by reading the object's status back, never by resending blindly.
        """
        return self.apply_action(resource, object_id, action, data)[0]

    def apply_action(
        self, resource: str, object_id: str | int, action: str, data: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], bool]:
        """:meth:`run_action`, and whether the action was sent (False: the object was in its target state)."""
        spec = get_resource(resource)
        checked_id = validate_object_id(object_id, integers=spec.integer_ids)
        spec.action(action)
        body = None if data is None else check_data(data)
        self._writer.check_allowed(spec, "action")
        report_read(self, self.settings, spec, written=True)
        return self._writer.run_action(spec, checked_id, action, body)

    def archive_object(self, resource: str, object_id: str | int) -> None:
        """DELETE one object (Piriod archives a customer that has history); retried like a read."""
        spec = get_resource(resource)
        checked_id = validate_object_id(object_id, integers=spec.integer_ids)
        self._writer.check_allowed(spec, "archive")
        report_read(self, self.settings, spec, written=True)
        self._writer.archive(spec, checked_id)

    def test_connection(self) -> tuple[bool, str]:
        """Read-only check used by the UI's Test button and ``airflow connections test``."""
        try:
            count = self.count_customers()
        except Exception as exc:  # the UI wants a message, not a traceback
            return False, redact(str(exc), self._token_or_empty())
        settings = self.settings
        message = f"Connected to Piriod ({settings.describe()}): {count} customers visible. {self._webhooks_note()}"
        if settings.unknown_extras:  # a typo keeps a default silently: the test is where to catch it
            unknown = "; ".join(settings.unknown_extras)
            text = f"{message} But the connection sets extras this provider does not read: {unknown}. Fix or drop them."
            return False, redact(text, settings.token)
        return True, message

    def _webhooks_note(self) -> str:
        """What the connection test says about webhooks: on, or how to turn them on."""
        from airflow_provider_piriod.connection import webhook_options

        secret, _ = webhook_options(self.get_connection(self.piriod_conn_id))
        if secret:
            return f"Webhooks: on, at POST /piriod/webhooks/{self.piriod_conn_id} of the API server."
        return (
            "Webhooks: off; to receive them, set the extra webhook_secret to the webhook's secret (whsecret_...) "
            "shown in Piriod."
        )

    # ------------------------------------------------------------------ internals

    def _get_object(self, resource: Resource, object_id: Any, argument: str) -> Any:
        object_id = validate_object_id(object_id, argument, integers=resource.integer_ids)
        report_read(self, self.settings, resource)
        return to_model(resource, self._transport.get_object(resource, object_id))

    def _get_objects(
        self, resource: Resource, object_ids: Any, argument: str, max_workers: int, ignore_missing: bool
    ) -> list[Any]:
        ids = validate_object_ids(object_ids, argument, integers=resource.integer_ids)
        workers = validate_max_workers(max_workers)
        report_read(self, self.settings, resource)
        unique = list(dict.fromkeys(ids))
        models = self._transport.get_objects(
            resource,
            unique,
            workers=min(workers, max(1, len(unique))),
            ignore_missing=ignore_missing,
            convert=lambda data: to_model(resource, data),
        )
        return [models[object_id] for object_id in ids if object_id in models]

    def _iter_json(
        self, resource: Resource, filters: Mapping[str, Any] | None, page_size: int, max_workers: int
    ) -> Iterator[dict[str, Any]]:
        params = {**filter_params(filters), "page_size": str(validate_page_size(page_size))}
        workers = validate_max_workers(max_workers)
        self._check_filters(self.settings, resource, filters)
        report_read(self, self.settings, resource)
        return self._transport.iter_list(resource, params, workers)

    def _token_or_empty(self) -> str:
        try:
            return self.settings.token
        except Exception:
            return ""


class PiriodAsyncHook(_PiriodHookBase):
    """
    Async twin of :class:`PiriodHook` for triggers: the same attempts in worker threads, never a blocking call.

    Same connection parsing, retry and backoff rules, deadline, size cap and typed errors as the
    sync hook; methods return the JSON Piriod sent. Use it as an async context manager::

        async with PiriodAsyncHook("piriod_default") as hook:
            invoice = await hook.get_object_json("invoices", "inv_...")
    """

    hook_name = "Piriod (async)"

    def __init__(
        self,
        piriod_conn_id: str = _PiriodHookBase.default_conn_name,
        *,
        test_mode: bool | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(piriod_conn_id, test_mode=test_mode, timeout=timeout, max_retries=max_retries)
        self._settings: PiriodSettings | None = None
        self._transport: AsyncPiriodTransport | None = None

    async def get_settings(self) -> PiriodSettings:
        """The validated connection, fetched the Airflow 3 async way (once per hook)."""
        if self._settings is None:
            conn = await self._aget_connection()
            if isinstance(conn.password, str) and conn.password:
                await amask_secret(conn.password)  # before anything about the connection is logged
            self._settings = self._settings_from(conn)
        return self._settings

    async def _aget_connection(self) -> Any:
        """Airflow 3's async lookup; on 2.11, the sync one in a worker thread (the loop stays free)."""
        aget_connection = getattr(self, "aget_connection", None)
        if aget_connection is not None:
            return await aget_connection(self.piriod_conn_id)
        return await asyncio.to_thread(self.get_connection, self.piriod_conn_id)

    async def __aenter__(self) -> PiriodAsyncHook:
        transport = AsyncPiriodTransport(await self.get_settings(), log=self.log, retry_delay=self._retry_delay)
        self._transport = await transport.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._transport is not None:
            await self._transport.__aexit__(*exc_info)
            self._transport = None

    @property
    def transport(self) -> AsyncPiriodTransport:
        if self._transport is None:
            raise RuntimeError("use PiriodAsyncHook as `async with PiriodAsyncHook(...) as hook:`")
        return self._transport

    async def get_object_json(self, resource: str, object_id: str | int) -> dict[str, Any]:
        """One object as Piriod sent it; PiriodNotFoundError if it does not exist (yet)."""
        spec = get_resource(resource)
        return await self.transport.get_object(spec, validate_object_id(object_id, integers=spec.integer_ids))

    async def count_objects(self, resource: str, filters: Mapping[str, Any] | None = None) -> int:
        spec, params = get_resource(resource), filter_params(filters)
        self._check_filters(self.transport.settings, spec, filters)
        return await self.transport.count(spec, params)

    async def iter_object_json(
        self, resource: str, filters: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching object, following ``next`` on the configured origin and list only."""
        spec = get_resource(resource)
        params = {**filter_params(filters), "page_size": str(validate_page_size(page_size))}
        self._check_filters(self.transport.settings, spec, filters)
        async for item in self.transport.iter_list(spec, params):
            yield item

    async def get_customer_json(self, customer_id: str) -> dict[str, Any]:
        customers = get_resource(CUSTOMERS)
        return await self.transport.get_object(customers, validate_object_id(customer_id, "customer_id"))

    async def count_customers(self, filters: Mapping[str, Any] | None = None) -> int:
        return await self.count_objects(CUSTOMERS, filters)

    def iter_customer_json(
        self, filters: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching customer, following ``next`` on the configured origin only."""
        return self.iter_object_json(CUSTOMERS, filters, page_size=page_size)
