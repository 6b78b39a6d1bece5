"""Piriod triggers, fully async on the triggerer.

PiriodTrigger waits for a condition on any resource (a deferred sensor); PiriodCustomerTrigger is the
same on customers, with the arguments (and the serialized form) it has always had, so triggers already
stored in a metadata database keep working. PiriodEventTrigger (defined in ``triggers.watcher``)
announces new objects to an AssetWatcher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_piriod.compat import BaseTrigger, TriggerEvent
from airflow_provider_piriod.conditions import Outcome, ResourceCondition
from airflow_provider_piriod.exceptions import PiriodNotFoundError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook
from airflow_provider_piriod.operators.xcom import success_event
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS
from airflow_provider_piriod.triggers.watcher import PiriodEventTrigger

__all__ = ["PiriodCustomerTrigger", "PiriodEventTrigger", "PiriodTrigger", "check_condition"]

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
