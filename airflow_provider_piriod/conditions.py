"""What a Piriod sensor waits for, judged the same way on every path.

The sensor's poke (poke and reschedule modes) and the trigger (deferrable mode) fetch with
different clients but hand what they fetched to :class:`ResourceCondition`, so the three paths
agree on when the wait is over, when it has failed, and on the value pushed to XCom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.resources import Resource, get_resource

CUSTOMERS = "customers"
#: the customer statuses (kept for code that imported them from here)
KNOWN_STATUSES = get_resource(CUSTOMERS).statuses
_MISSING = object()


@dataclass(frozen=True)
class Outcome:
    """``state`` is "done" (``value`` is the XCom), "waiting" or "failed"; ``message`` says why."""

    state: str
    message: str = ""
    value: Any = None


@dataclass(frozen=True)
class ResourceCondition:
    """One object of ``resource`` (by id) or ``min_count`` objects matching ``filters``, with a status and values."""

    resource: str = CUSTOMERS
    object_id: str | int | None = None
    filters: dict[str, Any] | None = None
    target_status: str | None = None
    match: dict[str, Any] = field(default_factory=dict)
    min_count: int = 1
    fail_statuses: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        resource: str = CUSTOMERS,
        object_id: str | int | None = None,
        filters: Mapping[str, Any] | None = None,
        target_status: str | None = None,
        match: Mapping[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: Sequence[str] | None = None,
        id_argument: str = "object_id",
        owner: str = "PiriodSensor",
    ) -> ResourceCondition:
        """Validate a sensor's arguments (no I/O); errors name the argument as ``owner`` calls it."""
        spec = get_resource(resource)
        if (object_id is None) == (filters is None):
            raise PiriodInputError(
                f"{owner} needs exactly one of {id_argument} or filters (filters={{}} means any {spec.label})"
            )
        if filters is not None and not isinstance(filters, Mapping):
            raise PiriodInputError(f"filters must be a dict, got {type(filters).__name__}")
        _check_target_status(spec, target_status)
        _check_match(match)
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise PiriodInputError(f"min_count must be a whole number of at least 1, got {min_count!r}")
        fail_statuses = _checked_fail_statuses(spec, target_status, fail_statuses)
        return cls(
            resource=spec.name,
            object_id=object_id,
            filters=dict(filters) if filters is not None else None,
            target_status=target_status,
            match=dict(match or {}),
            min_count=min_count,
            fail_statuses=tuple(fail_statuses),
        )

    @property
    def spec(self) -> Resource:
        return get_resource(self.resource)

    @property
    def filters_client_side(self) -> bool:
        """True when list results must be inspected one by one (a status or match to check)."""
        return self.target_status is not None or bool(self.match)

    def matches(self, item: Mapping[str, Any]) -> bool:
        if self.target_status is not None and item.get("status") != self.target_status:
            return False
        return all(_lookup(item, path) == wanted for path, wanted in self.match.items())

    def judge_object(self, item: Mapping[str, Any] | None) -> Outcome:
        """Id mode: ``None`` means Piriod answered 404 (not created yet)."""
        name = f"Piriod {self.spec.label} {self.object_id!r}"
        if item is None:
            return Outcome("waiting", f"{name} does not exist yet")
        status = item.get("status")
        if status in self.fail_statuses:
            waited_for = f" while waiting for {self.target_status!r}" if self.target_status else ""
            return Outcome(
                "failed",
                f"{name} reached status {status!r}{waited_for}; failing now instead of "
                f"waiting for the timeout (fail_statuses={list(self.fail_statuses)})",
            )
        if not self.matches(item):
            return Outcome("waiting", f"{name} exists but {self._difference(item)}")
        return Outcome("done", f"{name} matches", dict(item))

    def judge_count(self, count: int) -> Outcome | None:
        """Filters mode without client-side checks: a count below ``min_count`` settles it in one request."""
        if count < self.min_count:
            return Outcome(
                "waiting", f"{count} Piriod {self._plural} match {self.filters}; waiting for {self.min_count}"
            )
        return None

    def judge_list(self, items: Sequence[Mapping[str, Any]]) -> Outcome:
        """Filters mode: done once ``min_count`` listed objects satisfy the status and match."""
        matching = [dict(item) for item in items if self.matches(item)]
        if len(matching) < self.min_count:
            return Outcome(
                "waiting",
                f"{len(matching)} Piriod {self._plural} match {self.filters}"
                f"{self._checks()}; waiting for {self.min_count}",
            )
        return Outcome("done", f"{len(matching)} Piriod {self._plural} match", matching)

    @property
    def _plural(self) -> str:
        return f"{self.spec.label}s"

    def _difference(self, item: Mapping[str, Any]) -> str:
        if self.target_status is not None and item.get("status") != self.target_status:
            return f"its status is {item.get('status')!r}, waiting for {self.target_status!r}"
        wrong = [f"{p}={_lookup(item, p)!r} (want {v!r})" for p, v in self.match.items() if _lookup(item, p) != v]
        return "it does not match yet: " + ", ".join(wrong)

    def _checks(self) -> str:
        parts = [f"status={self.target_status!r}"] if self.target_status else []
        parts += [f"{p}={v!r}" for p, v in self.match.items()]
        return f" with {', '.join(parts)}" if parts else ""


class CustomerCondition(ResourceCondition):
    """A :class:`ResourceCondition` on customers, built and read with the customer sensor's names."""

    @classmethod
    def build(  # type: ignore[override]
        cls,
        *,
        customer_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        target_status: str | None = None,
        match: Mapping[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: Sequence[str] | None = None,
    ) -> CustomerCondition:
        condition = ResourceCondition.build(
            resource=CUSTOMERS,
            object_id=customer_id,
            filters=filters,
            target_status=target_status,
            match=match,
            min_count=min_count,
            fail_statuses=fail_statuses,
            id_argument="customer_id",
            owner="PiriodCustomerSensor",
        )
        return cls(**{name: getattr(condition, name) for name in condition.__dataclass_fields__})

    @property
    def customer_id(self) -> str | int | None:
        return self.object_id

    def judge_customer(self, customer: Mapping[str, Any] | None) -> Outcome:
        """Customer mode: ``None`` means Piriod answered 404 (not created yet)."""
        return self.judge_object(customer)


def _check_target_status(spec: Resource, target_status: str | None) -> None:
    if target_status is None:
        return
    if not spec.statuses:
        raise PiriodInputError(
            f"Piriod documents no statuses for {spec.name}, so target_status={target_status!r} cannot be checked; "
            f"use match={{'status': ...}} to wait for a field's value"
        )
    if target_status not in spec.statuses:
        raise PiriodInputError(
            f"target_status must be one of {', '.join(spec.statuses)}; got {target_status!r} "
            f"(the statuses Piriod documents for {spec.name})"
        )


def _check_match(match: Mapping[str, Any] | None) -> None:
    if match is not None and (
        not isinstance(match, Mapping) or not all(isinstance(k, str) and k.strip() for k in match)
    ):
        raise PiriodInputError("match must be a dict of dotted field paths to values, e.g. {'country.id': 'CL'}")


def _checked_fail_statuses(spec: Resource, target_status: str | None, fail_statuses: Sequence[str] | None) -> list[str]:
    """The given fail statuses, checked; by default the registry's, minus the status waited for."""
    if fail_statuses is None:
        return [s for s in spec.fail_statuses if s != target_status] if target_status is not None else []
    if isinstance(fail_statuses, str) or any(s not in spec.statuses for s in fail_statuses):
        known = ", ".join(spec.statuses) or f"nothing (Piriod documents no statuses for {spec.name})"
        raise PiriodInputError(f"fail_statuses must be a list drawn from {known}; got {fail_statuses!r}")
    if target_status is not None and target_status in fail_statuses:
        raise PiriodInputError(f"target_status {target_status!r} cannot also be in fail_statuses")
    return list(fail_statuses)


def _lookup(data: Any, path: str) -> Any:
    """``country.id`` or ``contacts.0.email``; a missing step gives a sentinel that equals nothing."""
    for step in path.split("."):
        if isinstance(data, Mapping) and step in data:
            data = data[step]
        elif isinstance(data, list) and step.isdigit() and int(step) < len(data):
            data = data[int(step)]
        else:
            return _MISSING
    return data
