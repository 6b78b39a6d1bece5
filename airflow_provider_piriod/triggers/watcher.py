"""PiriodEventTrigger: new Piriod objects become asset events (an ``AssetWatcher`` trigger), fully async."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, cast

from airflow_provider_piriod.compat import BaseEventTrigger, TriggerEvent
from airflow_provider_piriod.events import event_payload
from airflow_provider_piriod.exceptions import PiriodError, PiriodInputError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS, filter_params, validate_whole_number
from airflow_provider_piriod.resources import get_resource
from airflow_provider_piriod.watermark import Verdict, Watermark, WatermarkStore, batches, parse_created

#: the query parameters the event trigger sets itself
EVENT_PARAMS = frozenset({"created__gte", "ordering"})
MAX_BATCH = 10_000
MAX_POLL_INTERVAL = 24 * 60 * 60
MAX_LOOKBACK = 7 * 24 * 60 * 60
#: how many ids dated ahead are remembered as already named in the log
WARNED_AHEAD = 1000


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
    #: seconds between handing events to Airflow and storing the watermark: Airflow's triggerer sends
    #: events on to its database about once a second, and a watermark stored before that could lose them
    event_sync_grace = 3.0

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
        self.poll_interval = _seconds("poll_interval", poll_interval, 1, MAX_POLL_INTERVAL)
        self.lookback = _seconds("lookback", lookback, 0, MAX_LOOKBACK)
        self.max_batch = validate_whole_number(max_batch, "max_batch", 1, MAX_BATCH)
        if not isinstance(piriod_conn_id, str) or not piriod_conn_id.strip():
            raise PiriodInputError(f"piriod_conn_id must be a connection id, got {piriod_conn_id!r}")
        self.piriod_conn_id = piriod_conn_id
        if test_mode is not None and not isinstance(test_mode, bool):
            raise PiriodInputError(f"test_mode must be True, False or None, got {test_mode!r}")
        self.test_mode = test_mode
        self._unsaved = False
        self._said_no_date = False
        self._named_ahead: set[str] = set()

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
        what = json.dumps([self.piriod_conn_id, self.resource, sorted(self.filters.items()), self.test_mode])
        return f"piriod-watermark:{self.resource}:{hashlib.sha256(what.encode()).hexdigest()[:24]}"

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
                if new_ids:  # a triggerer killed before this repeats the batch on restart, never loses it
                    await asyncio.sleep(self.event_sync_grace)
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
        self._log_start(watermark, resumed, store)
        return hook, watermark

    def _log_start(self, watermark: Watermark, resumed: bool, store: WatermarkStore) -> None:
        if store.unreadable:
            self.log.warning("The stored watermark could not be read; watching from Piriod's newest object instead")
        since = "none exist yet" if watermark.newest is None else watermark.newest.isoformat()
        if resumed:
            kept = "resumed from the Asset State Store"
        elif store.available:
            kept = "the watermark is kept in the Asset State Store"
        else:
            kept = f"{store.problem}: objects created while the triggerer is stopped will not be announced"
        # a weaker guarantee than the README promises on Airflow 3.3+: a warning, so it is seen
        level = logging.INFO if resumed or store.available else logging.WARNING
        self.log.log(
            level,
            "Watching for new %s (newest created: %s), every %g s; %s",
            self.resource,
            since,
            self.poll_interval,
            kept,
        )

    async def _baseline(self, hook: PiriodAsyncHook) -> Watermark:
        """Piriod's newest ``created`` now and the ids within ``lookback`` of it: history, never announced."""
        newest = await _first(hook.iter_object_json(self.resource, {"ordering": "-created"}, page_size=1))
        start = Watermark(None)
        if newest is not None:
            created = parse_created(newest.get("created"))
            if created is not None:
                start = Watermark(min(created, self._piriod_now(hook)))
            else:  # the value itself is not shown: it comes from the server
                self.log.warning(
                    "The newest of Piriod's %s has no readable 'created' timestamp: reading them all once, "
                    "as history, to find where to start",
                    self.resource,
                )
        # read the window even when the probe found nothing: whatever it returns already existed
        return self._judge(hook, start, await self._window(hook, start)).watermark

    async def _poll(self, hook: PiriodAsyncHook, watermark: Watermark) -> tuple[list[Any], Watermark]:
        """The ids new since ``watermark`` (oldest first) and the watermark after them."""
        verdict = self._judge(hook, watermark, await self._window(hook, watermark))
        if verdict.unreadable:
            self.log.warning(
                "Skipped %d %s without a readable 'created' timestamp or id", verdict.unreadable, self.resource
            )
        if verdict.ids:
            events = -(-len(verdict.ids) // self.max_batch)
            self.log.info("%d new %s; sending %d event%s", len(verdict.ids), self.resource, events, "s"[: events > 1])
        return verdict.ids, verdict.watermark

    def _judge(self, hook: PiriodAsyncHook, watermark: Watermark, window: list[dict[str, Any]]) -> Verdict:
        """The window read against ``watermark`` on Piriod's clock; objects dated far ahead are named once."""
        verdict = watermark.advance(window, self.lookback, self._piriod_now(hook))
        unnamed = [object_id for object_id in verdict.ahead if str(object_id) not in self._named_ahead]
        if unnamed:
            room = max(0, WARNED_AHEAD - len(self._named_ahead))
            self._named_ahead.update(str(object_id) for object_id in unnamed[:room])
            self.log.warning(
                "Not announcing %d %s dated more than an hour after Piriod's clock (until they are within it): %s",
                len(unnamed),
                self.resource,
                ", ".join(str(object_id)[:40] for object_id in unnamed[:10]),
            )
        return verdict

    def _piriod_now(self, hook: PiriodAsyncHook) -> datetime:
        """Piriod's clock: the Date of its last answer; the local clock when it sends none (said once)."""
        date = getattr(hook.transport, "server_date", None)
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            if date:
                return parsedate_to_datetime(date).astimezone(timezone.utc)
        if not self._said_no_date:
            self._said_no_date = True
            self.log.warning("Piriod's answers carry no Date header: the local clock bounds dates instead")
        return datetime.now(timezone.utc)

    async def _window(self, hook: PiriodAsyncHook, watermark: Watermark) -> list[dict[str, Any]]:
        """Every matching object created since the window start, oldest first (page by page)."""
        # id breaks ties in created, so pages stay stable (a server that cannot order by id ignores it)
        params = {**self.filters, "ordering": "created,id"}
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
        self.log.log(
            logging.WARNING if isinstance(exc, TRANSIENT_ERRORS) else logging.ERROR,
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
    if isinstance(filters, dict):  # a set's order changes between processes: sort it so every parse agrees
        filters = {
            key: sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
            for key, value in filters.items()
        }
    params = filter_params(filters)
    taken = sorted(EVENT_PARAMS & params.keys())
    if taken:
        raise PiriodInputError(f"filters: {', '.join(taken)} is set by PiriodEventTrigger itself")
    return dict(sorted(params.items()))


def _seconds(name: str, value: Any, low: float, high: float) -> float:
    """A number of seconds from ``low`` to ``high``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not low <= value <= high:
        raise PiriodInputError(f"{name} must be a number of seconds from {low:g} to {high:g}, got {value!r}")
    return float(value)
