"""PiriodSensor: wait for an object of any Piriod resource to appear or reach a status, or for objects matching filters.

PiriodCustomerSensor is the same sensor on customers, with ``customer_id``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow_provider_piriod.compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow_provider_piriod.conditions import Outcome, ResourceCondition
from airflow_provider_piriod.exceptions import PiriodError, PiriodNotFoundError
from airflow_provider_piriod.connection import DEFAULT_CONN_ID
from airflow_provider_piriod.operators.xcom import event_value, for_xcom
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS, validate_object_id
from airflow_provider_piriod.resources import get_resource

# The hook and the triggers (requests, pydantic models, transports) are imported where they are used,
# in the task, so a DAG file with many sensors parses at the cost of plain sensors.
if TYPE_CHECKING:
    from airflow_provider_piriod.compat import Context
    from airflow_provider_piriod.hooks.piriod import PiriodHook
    from airflow_provider_piriod.triggers.piriod import PiriodTrigger

CUSTOMERS = "customers"


class PiriodSensor(BaseSensorOperator):
    """
    Wait until a Piriod object exists (and has ``target_status`` and every ``match`` value), or
    until at least ``min_count`` objects of ``resource`` match ``filters``; then push their JSON to XCom.

    * ``object_id``: a 404 means "not yet". Reaching a status in ``fail_statuses`` (by default the
      resource's own, e.g. ``["uncollectible"]`` for invoices, when ``target_status`` is set) fails
      the task at once.
    * ``filters``: done when ``min_count`` objects match (and have ``target_status`` / ``match``).
      The XCom value is the list of matching objects.

    Authentication, configuration and other non-transient errors fail the task at once with
    Piriod's message; transient ones (network, 429, 5xx) are retried by the hook and otherwise
    count as "not yet". The same checks and the same XCom value apply in poke, reschedule and
    deferrable mode; deferrable mode checks once before deferring, so a condition that already
    holds costs no deferral, and honours the sensor's ``timeout`` while deferred.

    :param resource: the Piriod resource, e.g. ``"invoices"`` (checked when the DAG is parsed).
    :param object_id: id to wait for (templated).
    :param filters: Piriod list filters (templated).
    :param target_status: one of the resource's documented statuses (checked when the DAG is parsed).
    :param match: dotted field paths and the values they must have, e.g. ``{"currency": "CLP"}`` (templated).
    :param min_count: how many matching objects ``filters`` mode waits for.
    :param fail_statuses: statuses that end the wait with a failure (drawn from the resource's statuses).
    :param deferrable: wait on the triggerer instead of a worker slot
        (default: ``[operators] default_deferrable``).
    :param piriod_conn_id: the ``piriod`` connection (templated).
    :param test_mode: override the connection's ``test_mode``.
    """

    template_fields: Sequence[str] = ("object_id", "filters", "match", "piriod_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"filters": "json", "match": "json"}
    ui_color = "#fdf1e8"

    #: how this sensor names its id argument in messages (a subclass may call it otherwise)
    id_argument = "object_id"

    def __init__(
        self,
        *,
        resource: str,
        object_id: str | int | None = None,
        filters: Mapping[str, Any] | None = None,
        target_status: str | None = None,
        match: Mapping[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: Sequence[str] | None = None,
        deferrable: bool | None = None,
        piriod_conn_id: str = DEFAULT_CONN_ID,
        test_mode: bool | None = None,
        **kwargs: Any,
    ) -> None:
        condition = ResourceCondition.build(  # validates now, at DAG parse time
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
        super().__init__(**kwargs)
        self.resource = condition.resource
        self.object_id = object_id
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
        from airflow_provider_piriod.hooks.piriod import PiriodHook

        return PiriodHook(self.piriod_conn_id, test_mode=self.test_mode)

    def condition(self) -> ResourceCondition:
        """The condition with templated fields rendered."""
        return ResourceCondition.build(
            resource=self.resource,
            object_id=self.object_id,
            filters=self.filters,
            target_status=self.target_status,
            match=self.match,
            min_count=self.min_count,
            fail_statuses=self.fail_statuses,
            id_argument=self.id_argument,
            owner=type(self).__name__,
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
        if outcome.state != "done":
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=for_xcom(outcome.value, where=self._value_name))

    def _check(self, condition: ResourceCondition) -> Outcome:
        hook, spec = self.hook, condition.spec
        if condition.object_id is not None:
            object_id = validate_object_id(condition.object_id, self.id_argument, integers=spec.integer_ids)
            try:
                item = hook.get_object(spec.name, object_id).to_json()
            except PiriodNotFoundError:
                item = None
            return condition.judge_object(item)
        if not condition.filters_client_side:
            short = condition.judge_count(hook.count_objects(spec.name, condition.filters))
            if short is not None:
                return short
        return condition.judge_list(list(hook.iter_object_json(spec.name, condition.filters)))

    @property
    def _value_name(self) -> str:
        label = get_resource(self.resource).label
        return label if self.object_id is not None else f"{label}s"

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # already satisfied: no deferral at all
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=self._trigger(self.condition(), deadline=time.time() + float(self.timeout)),
            method_name="execute_complete",
            # backstop only: the trigger reports the deadline itself, with a clearer message
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def _trigger(self, condition: ResourceCondition, *, deadline: float) -> PiriodTrigger:
        """The trigger that waits for ``condition`` on the triggerer."""
        from airflow_provider_piriod.triggers.piriod import PiriodTrigger

        kwargs = self._trigger_kwargs(condition, deadline)
        return PiriodTrigger(resource=condition.resource, object_id=condition.object_id, **kwargs)

    def _trigger_kwargs(self, condition: ResourceCondition, deadline: float) -> dict[str, Any]:
        """What every Piriod trigger takes besides the resource and the id."""
        return {
            "piriod_conn_id": self.piriod_conn_id,
            "filters": condition.filters,
            "target_status": condition.target_status,
            "match": condition.match,
            "min_count": condition.min_count,
            "fail_statuses": list(condition.fail_statuses),
            "test_mode": self.test_mode,
            "poke_interval": float(self.poke_interval),
            "deadline": deadline,
        }

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Turn the trigger's event into the task's result (the same XCom value as a poke)."""
        status = (event or {}).get("status")
        message = (event or {}).get("message", "")
        if status == "success":
            assert event is not None  # it has a status
            self.log.info("%s", message)
            return for_xcom(event_value(event), where=self._value_name)
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        if status in ("failed", "error"):
            raise AirflowFailException(message)
        raise AirflowException(f"{type(self).__name__}'s trigger sent an unexpected event: {event!r}")


class PiriodCustomerSensor(PiriodSensor):
    """
    Wait until a Piriod customer exists (and has ``target_status`` and every ``match`` value), or
    until at least ``min_count`` customers match ``filters``: :class:`PiriodSensor` on ``customers``.

    ``fail_statuses`` defaults to ``["archived"]`` when ``target_status`` is set; deferrable mode
    waits in :class:`~airflow_provider_piriod.triggers.piriod.PiriodCustomerTrigger`.

    :param customer_id: id to wait for (templated).
    :param target_status: ``active``, ``pending`` or ``archived``.
    """

    template_fields: Sequence[str] = ("customer_id", "filters", "match", "piriod_conn_id")

    id_argument = "customer_id"

    def __init__(self, *, customer_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(resource=CUSTOMERS, object_id=customer_id, **kwargs)

    # the customer name is the generic field under another name, so templating either renders both
    @property
    def customer_id(self) -> str | int | None:  # the generic field, as CustomerCondition.customer_id
        return self.object_id

    @customer_id.setter
    def customer_id(self, value: str | None) -> None:
        self.object_id = value

    def _trigger(self, condition: ResourceCondition, *, deadline: float) -> PiriodTrigger:
        # a string (or None): execute() pokes first, which refuses any other customer id before deferring
        from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger

        customer_id = cast("str | None", condition.object_id)
        return PiriodCustomerTrigger(customer_id=customer_id, **self._trigger_kwargs(condition, deadline))
