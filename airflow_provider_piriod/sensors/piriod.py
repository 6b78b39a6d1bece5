"""PiriodCustomerSensor: wait for a customer to appear or reach a status, or for customers matching filters."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_piriod.compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow_provider_piriod.conditions import CustomerCondition, Outcome
from airflow_provider_piriod.exceptions import PiriodError, PiriodNotFoundError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS
from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger

if TYPE_CHECKING:
    from airflow_provider_piriod.compat import Context


class PiriodCustomerSensor(BaseSensorOperator):
    """
    Wait until a Piriod customer exists (and has ``target_status`` and every ``match`` value), or
    until at least ``min_count`` customers match ``filters``; then push their JSON to XCom.

    * ``customer_id``: a 404 means "not yet". Reaching a status in ``fail_statuses`` (default
      ``["archived"]`` when ``target_status`` is set) fails the task at once.
    * ``filters``: done when ``min_count`` customers match (and have ``target_status`` / ``match``).
      The XCom value is the list of matching customers.

    Authentication, configuration and other non-transient errors fail the task at once with
    Piriod's message; transient ones (network, 429, 5xx) are retried by the hook and otherwise
    count as "not yet". The same checks and the same XCom value apply in poke, reschedule and
    deferrable mode; deferrable mode checks once before deferring, so a condition that already
    holds costs no deferral, and honours the sensor's ``timeout`` while deferred.

    :param customer_id: id to wait for (templated).
    :param filters: Piriod list filters (templated).
    :param target_status: ``active``, ``pending`` or ``archived``.
    :param match: dotted field paths and the values they must have, e.g. ``{"country.id": "CL"}`` (templated).
    :param min_count: how many matching customers ``filters`` mode waits for.
    :param fail_statuses: statuses that end the wait with a failure.
    :param deferrable: wait on the triggerer instead of a worker slot
        (default: ``[operators] default_deferrable``).
    :param piriod_conn_id: the ``piriod`` connection (templated).
    :param test_mode: override the connection's ``test_mode``.
    """

    template_fields: Sequence[str] = ("customer_id", "filters", "match", "piriod_conn_id")
    template_fields_renderers = {"filters": "json", "match": "json"}
    ui_color = "#fdf1e8"

    def __init__(
        self,
        *,
        customer_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        target_status: str | None = None,
        match: Mapping[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: Sequence[str] | None = None,
        deferrable: bool | None = None,
        piriod_conn_id: str = PiriodHook.default_conn_name,
        test_mode: bool | None = None,
        **kwargs: Any,
    ) -> None:
        condition = CustomerCondition.build(  # validates now, at DAG parse time
            customer_id=customer_id, filters=filters, target_status=target_status, match=match,
            min_count=min_count, fail_statuses=fail_statuses,
        )
        super().__init__(**kwargs)
        self.customer_id = customer_id
        self.filters = filters
        self.target_status = target_status
        self.match = match
        self.min_count = min_count
        self.fail_statuses = list(condition.fail_statuses)
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = deferrable
        self.piriod_conn_id = piriod_conn_id
        self.test_mode = test_mode

    @cached_property
    def hook(self) -> PiriodHook:
        return PiriodHook(self.piriod_conn_id, test_mode=self.test_mode)

    def condition(self) -> CustomerCondition:
        """The condition with templated fields rendered."""
        return CustomerCondition.build(
            customer_id=self.customer_id, filters=self.filters, target_status=self.target_status, match=self.match,
            min_count=self.min_count, fail_statuses=self.fail_statuses,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            outcome = self._check(self.condition())
        except TRANSIENT_ERRORS as exc:
            self.log.warning("Piriod unavailable for now, will check again: %s", exc)
            return PokeReturnValue(is_done=False)
        except PiriodError as exc:
            raise AirflowFailException(str(exc)) from exc
        if outcome.state == "failed":
            raise AirflowFailException(outcome.message)
        self.log.info("%s", outcome.message)
        return PokeReturnValue(is_done=outcome.state == "done", xcom_value=outcome.value)

    def _check(self, condition: CustomerCondition) -> Outcome:
        hook = self.hook
        if condition.customer_id is not None:
            try:
                customer = hook.get_customer(condition.customer_id).to_json()
            except PiriodNotFoundError:
                customer = None
            return condition.judge_customer(customer)
        if not condition.filters_client_side:
            short = condition.judge_count(hook.count_customers(condition.filters))
            if short is not None:
                return short
        return condition.judge_list([customer.to_json() for customer in hook.iter_customers(condition.filters)])

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # already satisfied: no deferral at all
        if first.is_done:
            return first.xcom_value
        condition = self.condition()
        self.defer(
            trigger=PiriodCustomerTrigger(
                piriod_conn_id=self.piriod_conn_id,
                customer_id=condition.customer_id,
                filters=condition.filters,
                target_status=condition.target_status,
                match=condition.match,
                min_count=condition.min_count,
                fail_statuses=list(condition.fail_statuses),
                test_mode=self.test_mode,
                poke_interval=float(self.poke_interval),
                deadline=time.time() + float(self.timeout),
            ),
            method_name="execute_complete",
            # backstop only: the trigger reports the deadline itself, with a clearer message
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Turn the trigger's event into the task's result (the same XCom value as a poke)."""
        status = (event or {}).get("status")
        message = (event or {}).get("message", "")
        if status == "success":
            self.log.info("%s", message)
            return event["value"]
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        if status in ("failed", "error"):
            raise AirflowFailException(message)
        raise AirflowException(f"PiriodCustomerTrigger sent an unexpected event: {event!r}")
