"""What a PiriodCustomerSensor waits for, judged the same way on every path.

The sensor's poke (poke and reschedule modes) and the trigger (deferrable mode) fetch with
different clients but hand what they fetched to :class:`CustomerCondition`, so the three paths
agree on when the wait is over, when it has failed, and on the value pushed to XCom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_piriod.exceptions import PiriodInputError

KNOWN_STATUSES = ("active", "archived", "pending")
_MISSING = object()


@dataclass(frozen=True)
class Outcome:
    """``state`` is "done" (``value`` is the XCom), "waiting" or "failed"; ``message`` says why."""

    state: str
    message: str = ""
    value: Any = None


@dataclass(frozen=True)
class CustomerCondition:
    customer_id: str | None = None
    filters: dict[str, Any] | None = None
    target_status: str | None = None
    match: dict[str, Any] = field(default_factory=dict)
    min_count: int = 1
    fail_statuses: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        customer_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        target_status: str | None = None,
        match: Mapping[str, Any] | None = None,
        min_count: int = 1,
        fail_statuses: Sequence[str] | None = None,
    ) -> CustomerCondition:
        """Validate the sensor's arguments; errors name the argument."""
        if (customer_id is None) == (filters is None):
            raise PiriodInputError(
                "PiriodCustomerSensor needs exactly one of customer_id or filters (filters={} means any customer)"
            )
        if filters is not None and not isinstance(filters, Mapping):
            raise PiriodInputError(f"filters must be a dict, got {type(filters).__name__}")
        if target_status is not None and target_status not in KNOWN_STATUSES:
            raise PiriodInputError(f"target_status must be one of {', '.join(KNOWN_STATUSES)}; got {target_status!r}")
        if match is not None and (
            not isinstance(match, Mapping) or not all(isinstance(k, str) and k.strip() for k in match)
        ):
            raise PiriodInputError("match must be a dict of dotted field paths to values, e.g. {'country.id': 'CL'}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise PiriodInputError(f"min_count must be a whole number of at least 1, got {min_count!r}")
        if fail_statuses is None:
            fail_statuses = ["archived"] if target_status not in (None, "archived") else []
        if isinstance(fail_statuses, str) or any(s not in KNOWN_STATUSES for s in fail_statuses):
            raise PiriodInputError(
                f"fail_statuses must be a list drawn from {', '.join(KNOWN_STATUSES)}; got {fail_statuses!r}"
            )
        if target_status is not None and target_status in fail_statuses:
            raise PiriodInputError(f"target_status {target_status!r} cannot also be in fail_statuses")
        return cls(
            customer_id=customer_id,
            filters=dict(filters) if filters is not None else None,
            target_status=target_status,
            match=dict(match or {}),
            min_count=min_count,
            fail_statuses=tuple(fail_statuses),
        )

    @property
    def filters_client_side(self) -> bool:
        """True when list results must be inspected one by one (a status or match to check)."""
        return self.target_status is not None or bool(self.match)

    def matches(self, customer: Mapping[str, Any]) -> bool:
        if self.target_status is not None and customer.get("status") != self.target_status:
            return False
        return all(_lookup(customer, path) == wanted for path, wanted in self.match.items())

    def judge_customer(self, customer: Mapping[str, Any] | None) -> Outcome:
        """Customer mode: ``None`` means Piriod answered 404 (not created yet)."""
        if customer is None:
            return Outcome("waiting", f"Piriod customer {self.customer_id!r} does not exist yet")
        status = customer.get("status")
        if status in self.fail_statuses:
            waited_for = f" while waiting for {self.target_status!r}" if self.target_status else ""
            return Outcome("failed", f"Piriod customer {self.customer_id!r} reached status {status!r}{waited_for}; "
                                     f"failing now instead of waiting for the timeout (fail_statuses={list(self.fail_statuses)})")
        if not self.matches(customer):
            return Outcome("waiting", f"Piriod customer {self.customer_id!r} exists but {self._difference(customer)}")
        return Outcome("done", f"Piriod customer {self.customer_id!r} matches", dict(customer))

    def judge_count(self, count: int) -> Outcome | None:
        """Filters mode without client-side checks: a count below ``min_count`` settles it in one request."""
        if count < self.min_count:
            return Outcome("waiting", f"{count} Piriod customers match {self.filters}; waiting for {self.min_count}")
        return None

    def judge_list(self, customers: Sequence[Mapping[str, Any]]) -> Outcome:
        """Filters mode: done once ``min_count`` listed customers satisfy the status and match."""
        matching = [dict(c) for c in customers if self.matches(c)]
        if len(matching) < self.min_count:
            return Outcome("waiting", f"{len(matching)} Piriod customers match {self.filters}"
                                      f"{self._checks()}; waiting for {self.min_count}")
        return Outcome("done", f"{len(matching)} Piriod customers match", matching)

    def _difference(self, customer: Mapping[str, Any]) -> str:
        if self.target_status is not None and customer.get("status") != self.target_status:
            return f"its status is {customer.get('status')!r}, waiting for {self.target_status!r}"
        wrong = [f"{p}={_lookup(customer, p)!r} (want {v!r})" for p, v in self.match.items() if _lookup(customer, p) != v]
        return "it does not match yet: " + ", ".join(wrong)

    def _checks(self) -> str:
        parts = [f"status={self.target_status!r}"] if self.target_status else []
        parts += [f"{p}={v!r}" for p, v in self.match.items()]
        return f" with {', '.join(parts)}" if parts else ""


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
