"""The records of one resource: pre-serialised JSON, and filtered, ordered listings cached until a change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_piriod.testing.jsontext import dumps_bytes
from airflow_provider_piriod.testing.moments import parse_day, parse_moment
from airflow_provider_piriod.testing.resource_specs import ResourceSpec

Predicate = Callable[[dict[str, Any]], bool]
PAGING_PARAMETERS = ("page", "page_size")
RANGE_LOOKUPS = ("gte", "lte", "gt", "lt", "")
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


class InvalidFilter(ValueError):
    """A filter value Piriod would refuse with a 400 naming the parameter (DRF field-error body)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.body = {parameter: [message]}


class Collection:
    """Every record of one resource across workspaces, keyed by ``str(id)`` (ids may be integers)."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec
        self.records: dict[str, dict[str, Any]] = {}
        self.owner: dict[str, str] = {}
        self.expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # what a record shows (embeds)
        self._json: dict[str, bytes] = {}
        self._views: dict[tuple, list[str]] = {}

    def add(self, record: dict[str, Any], workspace: str) -> None:
        key = str(record["id"])
        self.records[key] = record
        self.owner[key] = workspace
        self.changed(key)

    def changed(self, key: str | None = None) -> None:
        """Forget the cached JSON of ``key`` (of every record when None) and every cached listing."""
        if key is None:
            self._json.clear()
        else:
            self._json.pop(key, None)
        self._views.clear()

    def get(self, object_id: Any) -> dict[str, Any] | None:
        return self.records.get(str(object_id))

    def shown(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the API shows it (products embed their plans)."""
        return self.expand(record) if self.expand else record

    def record_json(self, key: str) -> bytes:
        cached = self._json.get(key)
        if cached is None:
            cached = self._json[key] = dumps_bytes(self.shown(self.records[key]))
        return cached

    def visible(self, key: str, workspace: str, test_mode: bool) -> bool:
        record = self.records.get(key)
        return record is not None and self.owner[key] == workspace and record.get("test_mode") == test_mode

    def of(self, workspace: str, test_mode: bool) -> list[dict[str, Any]]:
        """The records of one workspace and mode, in insertion order."""
        return [
            record
            for key, record in self.records.items()
            if self.owner[key] == workspace and record.get("test_mode") == test_mode
        ]

    def listing(self, workspace: str, test_mode: bool, params: list[tuple[str, str]]) -> list[str]:
        """Keys matching the filters in ``params``, ordered; raises :class:`InvalidFilter` for a bad value."""
        key = (workspace, test_mode, tuple(sorted(p for p in params if p[0] not in PAGING_PARAMETERS)))
        if key in self._views:
            return self._views[key]
        filters: list[Predicate] = []
        ordering = "-created"
        for name, value in params:
            if name in PAGING_PARAMETERS:
                continue
            if name == "ordering":
                ordering = value
                continue
            built = build_filter(self.spec, name, value)
            if built is not None:
                filters.append(built)
        keys = [
            k
            for k, record in self.records.items()
            if self.owner[k] == workspace
            and record.get("test_mode") == test_mode
            and all(check(record) for check in filters)
        ]
        self._order(keys, ordering)
        self._views[key] = keys
        return keys

    def _order(self, keys: list[str], ordering: str) -> None:
        """Sort in place by DRF's ``ordering`` (comma-separated, ``-`` descending), then by id."""
        for name in reversed([n.strip() for n in ordering.split(",") if n.strip()] + ["id"]):
            attribute = name.lstrip("-")
            if attribute not in self.spec.ordering:  # unknown ordering fields are ignored, as DRF does
                continue
            if attribute in self.spec.timestamps:
                keys.sort(key=lambda k: _moment_key(self.records[k].get(attribute)), reverse=name.startswith("-"))
            else:
                keys.sort(key=lambda k: _sort_key(self.records[k].get(attribute)), reverse=name.startswith("-"))


def _sort_key(value: Any) -> tuple:
    """Missing values last; numbers by value; anything else case-insensitively as text."""
    if value is None:
        return (True, 0, "")
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return (False, 0, value)
    return (False, 1, str(value).lower())


def _moment_key(value: Any) -> tuple:
    moment = parse_moment(value)
    return (moment is None, moment or _EARLIEST)


def _same(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):
        return wanted.strip().lower() in (("true", "1", "yes") if actual else ("false", "0", "no"))
    if isinstance(actual, (int, float, Decimal)):
        number = _number(wanted)
        return number is not None and Decimal(str(actual)) == number
    return actual is not None and str(actual) == wanted


def _matches(actual: Any, wanted: str) -> bool:
    """Exact match; a list field matches when any of its items does."""
    if isinstance(actual, list):
        return any(_same(item, wanted) for item in actual)
    return _same(actual, wanted)


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _compare(lookup: str, bound: Any) -> Callable[[Any], bool]:
    return {
        "gte": lambda a: a >= bound,
        "lte": lambda a: a <= bound,
        "gt": lambda a: a > bound,
        "lt": lambda a: a < bound,
        "": lambda a: a == bound,
    }[lookup]


def build_filter(spec: ResourceSpec, name: str, value: str) -> Predicate | None:
    """One query parameter as a predicate; None for a parameter Piriod would ignore."""
    if name == "search":
        needle = value.lower()
        return lambda r: any(needle in str(r.get(f) or "").lower() for f in spec.search)
    if name.startswith("metadata__") and len(name) > len("metadata__"):
        key = name[len("metadata__") :]
        return lambda r: _same((r.get("metadata") or {}).get(key), value)
    base, _, lookup = name.partition("__")
    if lookup in RANGE_LOOKUPS and base in spec.timestamps + spec.dates + spec.numbers:
        return _range_filter(spec, name, base, lookup, value)
    if lookup not in ("", "in"):
        return None
    if base in spec.derived:
        extract = spec.derived[base]
    elif base in spec.exact:

        def extract(record: dict[str, Any]) -> Any:
            return record.get(base)
    else:
        return None
    if lookup == "":
        return lambda r: _matches(extract(r), value)
    wanted = [v for v in value.split(",") if v != ""]
    return lambda r: any(_matches(extract(r), w) for w in wanted)


def _range_filter(spec: ResourceSpec, name: str, base: str, lookup: str, value: str) -> Predicate:
    """``field__gte`` and friends for timestamps (as instants), dates and money."""
    parse: Callable[[Any], date | Decimal | None]  # a datetime is a date
    if base in spec.timestamps:
        parse, message = parse_moment, "Enter a valid date/time."
    elif base in spec.dates:
        parse, message = parse_day, "Enter a valid date."
    else:

        def parse(text: Any) -> Decimal | None:
            return _number(str(text)) if isinstance(text, (str, int, float, Decimal)) else None

        message = "Enter a number."
    bound = parse(value)
    if bound is None:
        raise InvalidFilter(name, message)
    compare = _compare(lookup, bound)

    def check(record: dict[str, Any]) -> bool:
        actual = parse(record.get(base))
        return actual is not None and compare(actual)

    return check
