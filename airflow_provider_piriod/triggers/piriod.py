"""PiriodCustomerTrigger: waits for a Piriod customer condition on the triggerer, fully async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_piriod.compat import BaseTrigger, TriggerEvent
from airflow_provider_piriod.conditions import CustomerCondition, Outcome
from airflow_provider_piriod.exceptions import PiriodNotFoundError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS


async def check_condition(hook: PiriodAsyncHook, condition: CustomerCondition) -> Outcome:
    """One look at Piriod for ``condition`` (the async counterpart of the sensor's poke)."""
    if condition.customer_id is not None:
        try:
            customer = await hook.get_customer_json(condition.customer_id)
        except PiriodNotFoundError:
            customer = None
        return condition.judge_customer(customer)
    if not condition.filters_client_side:
        short = condition.judge_count(await hook.count_customers(condition.filters))
        if short is not None:
            return short
    return condition.judge_list([customer async for customer in hook.iter_customer_json(condition.filters)])


class PiriodCustomerTrigger(BaseTrigger):
    """
    Poll Piriod every ``poke_interval`` seconds until the condition holds, fails, or ``deadline``
    (a Unix timestamp) passes. Emits exactly one event:
    ``{"status": "success", "value": <customer JSON or list>}``, ``{"status": "failed", "message": ...}``
    (a fail status was reached), ``{"status": "timeout", "message": ...}`` or
    ``{"status": "error", "message": ..., "error": <exception type>}`` (auth, bad input, a broken answer).
    Transient failures (network, 429, 5xx) are retried with backoff and otherwise count as "not yet".
    """

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
        super().__init__()
        self.piriod_conn_id = piriod_conn_id
        self.condition = CustomerCondition.build(
            customer_id=customer_id, filters=filters, target_status=target_status, match=match,
            min_count=min_count, fail_statuses=fail_statuses,
        )
        self.test_mode = test_mode
        self.poke_interval = float(poke_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        condition = self.condition
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "piriod_conn_id": self.piriod_conn_id,
                "customer_id": condition.customer_id,
                "filters": condition.filters,
                "target_status": condition.target_status,
                "match": condition.match,
                "min_count": condition.min_count,
                "fail_statuses": list(condition.fail_statuses),
                "test_mode": self.test_mode,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

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
                return {"status": "success", "value": outcome.value, "message": outcome.message}
            if outcome.state == "failed":
                return {"status": "failed", "message": outcome.message}
            self.log.info("%s; checking again in %g s", outcome.message, self.poke_interval)
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return {"status": "timeout", "message": f"Gave up waiting at the sensor's deadline: {outcome.message}"}
            await asyncio.sleep(self.poke_interval if remaining is None else min(self.poke_interval, remaining))
