"""Piriod triggers, fully async on the triggerer.

PiriodTrigger waits for a condition on any resource (a deferred sensor); PiriodCustomerTrigger is the
same on customers, with the arguments (and the serialized form) it has always had, so triggers already
stored in a metadata database keep working. PiriodEventTrigger announces new objects to an AssetWatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from airflow_provider_piriod.compat import BaseEventTrigger, BaseTrigger, TriggerEvent
from airflow_provider_piriod.conditions import Outcome, ResourceCondition
from airflow_provider_piriod.events import event_payload
from airflow_provider_piriod.exceptions import PiriodError, PiriodInputError, PiriodNotFoundError, PiriodResponseError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook
from airflow_provider_piriod.operators.xcom import success_event
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS, filter_params
from airflow_provider_piriod.resources import get_resource
from airflow_provider_piriod.watermark import Watermark, WatermarkStore, batches, parse_created

CUSTOMERS = "customers"


async def check_condition(hook: PiriodAsyncHook, condition: ResourceCondition) -> Outcome:
    """One look at Piriod for ``condition`` (the async counterpart of the sensor's poke)."""
    resource = condition.resource
    if condition.object_id is not None:
        try:
            item = await hook.get_object_json(resource, condition.object_id)
        except PiriodNotFoundError:
            item = None
        return condition.judge_object(item)
    if not condition.filters_client_side:
        short = condition.judge_count(await hook.count_objects(resource, condition.filters))
        if short is not None:
            return short
    return condition.judge_list([item async for item in hook.iter_object_json(resource, condition.filters)])


class PiriodTrigger(BaseTrigger):
    """
    Poll Piriod every ``poke_interval`` seconds until the condition on ``resource`` holds, fails, or
    ``deadline`` (a Unix timestamp) passes. Emits exactly one event:

    * ``{"status": "success", "value": <JSON object or list>, "message": ...}``; when the value holds
      a ``Decimal`` (money beyond a float's digits) it travels as exact JSON text in ``"value_json"``
      instead, because trigger events must be plain JSON;
    * ``{"status": "failed", "message": ...}`` (a fail status was reached);
    * ``{"status": "timeout", "message": ...}``;
    * ``{"status": "error", "message": ..., "error": <exception type>}`` (auth, bad input, a broken answer).

    Transient failures (network, 429, 5xx) are retried with backoff and otherwise count as "not yet".
    """

    #: how messages name the id argument (the customer trigger calls it ``customer_id``)
    id_argument = "object_id"

    def __init__(
        self,
        *,
        resource: str,
        piriod_conn_id: str = "piriod_default",
        object_id: str | int | None = None,
        filters: dict[str, Any] | None = None,
        target_status: str | None = None,
        match: dict[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: list[str] | None = None,
        test_mode: bool | None = None,
        poke_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.piriod_conn_id = piriod_conn_id
        self.condition = ResourceCondition.build(
            resource=resource,
            object_id=object_id,
            filters=filters,
            target_status=target_status,
            match=match,
            min_count=min_count,
            fail_statuses=fail_statuses,
            id_argument=self.id_argument,
            owner=type(self).__name__,
        )
        self.test_mode = test_mode
        self.poke_interval = float(poke_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()

    def _kwargs(self) -> dict[str, Any]:
        """The JSON-only keyword arguments that rebuild this trigger."""
        condition = self.condition
        return {
            "resource": condition.resource,
            "piriod_conn_id": self.piriod_conn_id,
            "object_id": condition.object_id,
            "filters": condition.filters,
            "target_status": condition.target_status,
            "match": condition.match,
            "min_count": condition.min_count,
            "fail_statuses": list(condition.fail_statuses),
            "test_mode": self.test_mode,
            "poke_interval": self.poke_interval,
            "deadline": self.deadline,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with PiriodAsyncHook(self.piriod_conn_id, test_mode=self.test_mode) as hook:
                event = await self._wait(hook)
        except Exception as exc:  # auth, configuration, bad input or a broken answer: not worth waiting for
            event = {"status": "error", "message": str(exc), "error": type(exc).__name__}
        yield TriggerEvent(event)

    async def _wait(self, hook: PiriodAsyncHook) -> dict[str, Any]:
        while True:
            try:
                outcome = await check_condition(hook, self.condition)
            except TRANSIENT_ERRORS as exc:
                outcome = Outcome("waiting", f"Piriod unavailable for now ({exc})")
            if outcome.state == "done":
                return success_event(outcome.value, outcome.message)
            if outcome.state == "failed":
                return {"status": "failed", "message": outcome.message}
            self.log.info("%s; checking again in %g s", outcome.message, self.poke_interval)
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return {"status": "timeout", "message": f"Gave up waiting at the sensor's deadline: {outcome.message}"}
            await asyncio.sleep(self.poke_interval if remaining is None else min(self.poke_interval, remaining))


class PiriodCustomerTrigger(PiriodTrigger):
    """:class:`PiriodTrigger` on customers; its arguments and serialized form name the id ``customer_id``."""

    id_argument = "customer_id"

    def __init__(
        self,
        *,
        piriod_conn_id: str = "piriod_default",
        customer_id: str | None = None,
        filters: dict[str, Any] | None = None,
        target_status: str | None = None,
        match: dict[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: list[str] | None = None,
        test_mode: bool | None = None,
        poke_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(
            resource=CUSTOMERS,
            piriod_conn_id=piriod_conn_id,
            object_id=customer_id,
            filters=filters,
            target_status=target_status,
            match=match,
            min_count=min_count,
            fail_statuses=fail_statuses,
            test_mode=test_mode,
            poke_interval=poke_interval,
            deadline=deadline,
        )

    def _kwargs(self) -> dict[str, Any]:
        kwargs = super()._kwargs()
        del kwargs["resource"]
        kwargs["customer_id"] = kwargs.pop("object_id")
        return kwargs


#: the query parameters the event trigger sets itself
EVENT_PARAMS = frozenset({"created__gte", "ordering"})
MAX_BATCH = 10_000


class PiriodEventTrigger(BaseEventTrigger):
    """
    Announce NEW objects of ``resource`` matching ``filters`` to an ``AssetWatcher``, polling Piriod.

    Every ``poll_interval`` seconds it lists the objects created since its watermark (``created__gte``
    = newest ``created`` seen - ``lookback``, ``ordering=created``) and sends one event per poll that
    found any: ``{"resource", "ids", "count"}``, at most ``max_batch`` ids each. Objects that existed
    when it first started are never announced, and no object twice. On Airflow 3.3+ the watermark is
    kept in the Asset State Store, so a restarted triggerer resumes where it stopped; elsewhere each
    start begins from "now". Failed polls are logged and retried; after ``max_consecutive_failures`` in
    a row it raises, so the triggerer restarts it and the reason is in its log.
    """

    max_consecutive_failures = 10

    def __init__(
        self,
        *,
        resource: str,
        filters: dict[str, Any] | None = None,
        poll_interval: float = 60,
        lookback: float = 300,
        max_batch: int = 500,
        piriod_conn_id: str = "piriod_default",
        test_mode: bool | None = None,
    ) -> None:
        super().__init__()
        self.resource = get_resource(resource).name
        self.filters = _event_filters(filters)
        self.poll_interval = _seconds("poll_interval", poll_interval, positive=True)
        self.lookback = _seconds("lookback", lookback, positive=False)
        self.max_batch = _whole("max_batch", max_batch, 1, MAX_BATCH)
        self.piriod_conn_id = piriod_conn_id
        self.test_mode = test_mode
        self._unsaved = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Configuration only: two parses of one DAG give the same trigger (the watermark is not here)."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "resource": self.resource,
            "filters": self.filters,
            "poll_interval": self.poll_interval,
            "lookback": self.lookback,
            "max_batch": self.max_batch,
            "piriod_conn_id": self.piriod_conn_id,
            "test_mode": self.test_mode,
        }

    @property
    def state_key(self) -> str:
        """The Asset State Store key: one per (connection, resource, filters, mode) watched on that asset."""
        filters = ",".join(f"{key}={value}" for key, value in sorted(self.filters.items()))
        mode = "" if self.test_mode is None else f";test_mode={str(self.test_mode).lower()}"
        return f"piriod:{self.piriod_conn_id}:{self.resource}?{filters}{mode}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        store = WatermarkStore(getattr(self, "asset_state_store", None), self.state_key)
        async with contextlib.AsyncExitStack() as stack:
            hook, watermark = await self._start(stack, store)
            failures = 0
            while True:
                await asyncio.sleep(self.poll_interval)
                try:
                    new_ids, watermark = await self._poll(hook, watermark)
                except Exception as exc:  # every failure is logged and counted; none ends the watcher silently
                    failures += 1
                    self._failed(exc, failures)
                    continue
                failures = 0
                for ids in batches(new_ids, self.max_batch):
                    yield TriggerEvent(event_payload(self.resource, ids))
                # stored once Airflow holds the events: a crash in between repeats a batch, never loses one
                await self._save(store, watermark, changed=bool(new_ids))

    async def _start(
        self, stack: contextlib.AsyncExitStack, store: WatermarkStore
    ) -> tuple[PiriodAsyncHook, Watermark]:
        """The hook (kept open in ``stack``) and the stored watermark, else Piriod's "now"; retried like a poll."""
        hook: PiriodAsyncHook | None = None
        failures = 0
        while True:
            try:
                if hook is None:  # the connection lookup fails too when it is missing or broken
                    hook = await stack.enter_async_context(
                        PiriodAsyncHook(self.piriod_conn_id, test_mode=self.test_mode)
                    )
                watermark = await store.load()
                resumed = watermark is not None
                if watermark is None:
                    watermark = await self._baseline(hook)
                    await self._save(store, watermark, changed=True)
                break
            except Exception as exc:
                failures += 1
                self._failed(exc, failures)
                await asyncio.sleep(self.poll_interval)
        since = "the beginning (none exist yet)" if watermark.newest is None else watermark.newest.isoformat()
        self.log.info(
            "Watching for new %s %s %s, every %g s; %s",
            self.resource,
            "created after" if resumed else "created after Piriod's newest,",
            since,
            self.poll_interval,
            "resumed from the Asset State Store" if resumed else self._keeping(store),
        )
        return hook, watermark

    @staticmethod
    def _keeping(store: WatermarkStore) -> str:
        if store.available:
            return "the watermark is kept in the Asset State Store"
        return f"{store.problem}: objects created while the triggerer is stopped will not be announced"

    async def _baseline(self, hook: PiriodAsyncHook) -> Watermark:
        """Piriod's newest ``created`` now and the ids within ``lookback`` of it: history, never announced."""
        newest = await _first(hook.iter_object_json(self.resource, {"ordering": "-created"}, page_size=1))
        if newest is None:
            return Watermark(None)
        created = parse_created(newest.get("created"))
        if created is None:
            raise PiriodResponseError(
                f"the newest {self.resource} has no readable 'created': {newest.get('created')!r}"
            )
        start = Watermark(created)
        return start.advance(await self._window(hook, start), self.lookback)[1]

    async def _poll(self, hook: PiriodAsyncHook, watermark: Watermark) -> tuple[list[Any], Watermark]:
        """The ids new since ``watermark`` (oldest first) and the watermark after them."""
        new_ids, moved, unreadable = watermark.advance(await self._window(hook, watermark), self.lookback)
        if unreadable:
            self.log.warning("Skipped %d %s without a readable 'created' timestamp", unreadable, self.resource)
        if new_ids:
            events = -(-len(new_ids) // self.max_batch)
            self.log.info("%d new %s; sending %d event%s", len(new_ids), self.resource, events, "s"[: events > 1])
        return new_ids, moved

    async def _window(self, hook: PiriodAsyncHook, watermark: Watermark) -> list[dict[str, Any]]:
        """Every matching object created since the window start, oldest first (page by page)."""
        params = {**self.filters, "ordering": "created"}
        created_gte = watermark.created_gte(self.lookback)
        if created_gte is not None:
            params["created__gte"] = created_gte
        # only what the watermark needs: a long window of full objects would sit in the triggerer's memory
        return [
            {"id": item.get("id"), "created": item.get("created")}
            async for item in hook.iter_object_json(self.resource, params)
        ]

    async def _save(self, store: WatermarkStore, watermark: Watermark, *, changed: bool) -> None:
        """Keep ``watermark``; a failed write is logged and tried again after the next poll."""
        if not (changed or self._unsaved) or not store.available:
            return
        try:
            await store.save(watermark)
        except Exception as exc:
            self._unsaved = True
            self.log.warning("Could not keep the watermark in the Asset State Store (%s); will try again", exc)
        else:
            self._unsaved = False

    def _failed(self, exc: Exception, failures: int) -> None:
        """Log one failed poll; raise once ``max_consecutive_failures`` failed in a row."""
        reason = f"{type(exc).__name__}: {exc}"
        if failures >= self.max_consecutive_failures:
            raise PiriodError(
                f"{failures} polls of Piriod {self.resource} failed in a row; the last: {reason}"
            ) from exc
        transient = isinstance(exc, TRANSIENT_ERRORS)
        self.log.log(
            logging.WARNING if transient else logging.ERROR,
            "Polling Piriod %s failed (%s); trying again in %g s (%d of %d failures before giving up)",
            self.resource,
            reason,
            self.poll_interval,
            failures,
            self.max_consecutive_failures,
        )


async def _first(items: AsyncIterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The first item, closing the walk at once (no request for the next page)."""
    async with contextlib.aclosing(cast("AsyncGenerator[dict[str, Any], None]", items)) as walk:
        async for item in walk:
            return item
    return None


def _event_filters(filters: Any) -> dict[str, str]:
    """The filters as the query strings they become (JSON-only and deterministic); the trigger's own refused."""
    params = filter_params(filters)
    taken = sorted(EVENT_PARAMS & params.keys())
    if taken:
        raise PiriodInputError(f"filters: {', '.join(taken)} is set by PiriodEventTrigger itself")
    return params


def _seconds(name: str, value: Any, *, positive: bool) -> float:
    """A finite number of seconds, above 0 or at least 0."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < 0 or (positive and value == 0):
        bound = "above 0" if positive else "0 or more"
        raise PiriodInputError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PiriodInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value
