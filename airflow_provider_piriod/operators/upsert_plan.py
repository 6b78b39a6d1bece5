"""What an upsert will do with each record: create it, PATCH only what changed, or leave it alone.

Pure functions over JSON, no request: the operator looks the existing objects up and carries the plan
out. A record is matched on one field (``tax_id``) or one metadata key (``metadata.crm_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_piriod.exceptions import PiriodInputError, PiriodResponseError
from airflow_provider_piriod.hooks.writes import check_data, folded, has_id, quoted

CREATE, UPDATE, UNCHANGED, FAILED = "created", "updated", "unchanged", "failed"


@dataclass
class Planned:
    """One record's place in the plan, then its outcome (``action`` is ``failed`` if it cannot be written)."""

    index: int
    match: str
    action: str
    record: dict[str, Any] = field(repr=False)
    object_id: str | None = None
    changes: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None

    def report_line(self) -> dict[str, Any]:
        """What the per-record report says: no field values (they are personal data), only field names."""
        line: dict[str, Any] = {"index": self.index, "match": self.match, "action": self.action, "id": self.object_id}
        if self.changes:
            line["changed"] = sorted(self.changes)
        if self.error:
            line["error"] = self.error
        return line


def check_match_on(match_on: Any) -> str:
    """``field`` or ``metadata.<key>``, refused otherwise when the DAG is parsed."""
    if not isinstance(match_on, str) or not match_on.strip():
        raise PiriodInputError("match_on must name a field, e.g. 'tax_id', 'email' or 'metadata.crm_id'")
    if "{{" in match_on:
        return match_on  # rendered before execute, checked again there
    parts = match_on.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "metadata") or not all(p.strip() for p in parts):
        raise PiriodInputError(
            f"match_on={match_on[:60]!r}: give a field ('tax_id') or a metadata key ('metadata.crm_id')"
        )
    return match_on


def match_filter(match_on: str) -> str:
    """The Piriod list filter for ``match_on``: ``tax_id`` or ``metadata__crm_id``."""
    return match_on.replace(".", "__", 1)


def match_value(obj: Mapping[str, Any], match_on: str) -> str | None:
    """The text ``obj`` holds at ``match_on``, or None when it holds nothing there (or not a scalar)."""
    if "." in match_on:
        outer, key = match_on.split(".", 1)
        inner = obj.get(outer)
        value = inner.get(key) if isinstance(inner, Mapping) else None
    else:
        value = obj.get(match_on)
    if value is None or isinstance(value, (Mapping, list, bool)) or str(value) == "":
        return None
    return str(value)


def object_match_value(obj: Any, match_on: str, label: str, secret: str) -> str | None:
    """:func:`match_value` of an object Piriod listed; one that does not show the field (or shows metadata
    as something other than an object, null included) raises, since the record it would match could not be
    recognised. ``secret`` (the token) is kept out of the error's quote of the object's id."""
    outer = match_on.split(".", 1)[0]
    shown = obj.get(outer, ...) if isinstance(obj, Mapping) else ...
    if shown is ... or ("." in match_on and not isinstance(shown, Mapping)):
        object_id = quoted(obj.get("id"), secret) if isinstance(obj, Mapping) else "?"
        kind = "null" if shown is None else type(shown).__name__
        how = "does not show" if shown is ... else f"shows as {kind}"
        raise PiriodResponseError(
            f"Piriod {how} {outer} of {label} {object_id!r}: records cannot be matched on {match_on}; nothing written"
        )
    value = match_value(obj, match_on)
    if value is not None and not has_id(obj):
        raise PiriodResponseError(f"Piriod lists a {label} without an id: records cannot be matched; nothing written")
    return value


def match_keys(value: str) -> set[str]:
    """The :func:`folded` forms an object's value may show a record's ``value`` in: itself, and for a number
    the one a server storing it as a float would show (``12345678901234567890`` as ``1.2345678901234567e+19``)."""
    keys = {folded(value)}
    number = _as_decimal(value)
    if number is not None and abs(number.adjusted()) < 300:
        keys.add(folded(repr(float(number))))
    return keys


def check_records(records: Any, match_on: str) -> list[dict[str, Any]]:
    """Every record a mapping that can be sent, with a value at ``match_on``, no value twice: refused before
    any request."""
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise PiriodInputError(f"records must be a list of mappings; got {type(records).__name__}")
    seen: dict[str, int] = {}  # by folded value: "A@x.cl" and "a@x.cl" would match one object
    checked = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise PiriodInputError(f"records[{index}] must be a mapping of Piriod fields; got {type(record).__name__}")
        if "metadata" in record and not isinstance(record["metadata"], Mapping):
            kind = "null" if record["metadata"] is None else type(record["metadata"]).__name__
            raise PiriodInputError(f"records[{index}]['metadata'] must be a mapping of keys; got {kind}")
        value = match_value(record, match_on)
        if value is None:
            raise PiriodInputError(f"records[{index}] has no value at match_on={match_on!r}")
        key = folded(value)
        if key in seen:
            raise PiriodInputError(
                f"records[{seen[key]}] and records[{index}] have the same {match_on} (perhaps in another "
                "letter case, spacing or number format): which one to write is ambiguous"
            )
        seen[key] = index
        checked.append(check_data(record, f"records[{index}]"))
    return checked


def plan_record(
    index: int, record: dict[str, Any], matches: list[dict[str, Any]], match_on: str, secret: str
) -> Planned:
    """Create if nothing matches, update with the changed fields, unchanged if none. Two matches, or one whose
    value differs from the record's in form only (``folded`` equal: letter case, spaces, ``42.0`` for ``42``),
    fail it: that is for a person to resolve (ids quoted short and without ``secret``, the token)."""
    value = match_value(record, match_on) or ""
    if not matches:
        return Planned(index, value, CREATE, record)
    ids = ", ".join(quoted(m.get("id"), secret) for m in matches[:5])
    if len(matches) > 1:
        error = f"{len(matches)} objects match {match_on}: {ids}; resolve by hand"
        return Planned(index, value, FAILED, record, error=error)
    if match_value(matches[0], match_on) != value:
        error = f"{ids} shows {match_on} in another form (letter case, spaces or number format); resolve by hand"
        return Planned(index, value, FAILED, record, error=error)
    existing = matches[0]
    changes = changed_fields(record, existing)
    return Planned(index, value, UPDATE if changes else UNCHANGED, record, str(existing.get("id")), changes)


def changed_fields(record: Mapping[str, Any], existing: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``record`` whose value differs from ``existing``'s, as a PATCH body.

    ``metadata`` is compared key by key and sent whole (Piriod replaces it as one field), so keys the
    record does not name, the write key among them, are kept. A field the object does not show counts
    as changed: what Piriod does not return cannot be shown equal.
    """
    changes: dict[str, Any] = {}
    for name, value in record.items():
        current = existing.get(name)
        if name == "metadata" and isinstance(value, Mapping):
            kept = dict(current) if isinstance(current, Mapping) else {}
            if any(not same(v, kept.get(k)) for k, v in value.items()):
                changes[name] = {**kept, **value}
        elif name not in existing or not same(value, current):
            changes[name] = value
    return changes


def same(wanted: Any, current: Any) -> bool:
    """Whether Piriod's ``current`` value already is ``wanted``: equal JSON, the same number however written
    (``"19.90"`` and ``19.9``), or the id of the object Piriod shows where a write gives an id (``country``)."""
    if wanted == current and type(wanted) is type(current):
        return True
    if isinstance(current, Mapping) and not isinstance(wanted, Mapping) and "id" in current:
        return same(wanted, current["id"])
    if isinstance(wanted, Mapping) and isinstance(current, Mapping):
        return wanted.keys() == current.keys() and all(same(v, current[k]) for k, v in wanted.items())
    if isinstance(wanted, list) and isinstance(current, list):
        return len(wanted) == len(current) and all(same(w, c) for w, c in zip(wanted, current, strict=True))
    if _is_number(wanted) or _is_number(current):
        return _as_decimal(wanted) is not None and _as_decimal(wanted) == _as_decimal(current)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def summary(plan: list[Planned]) -> dict[str, int]:
    counts = {CREATE: 0, UPDATE: 0, UNCHANGED: 0, FAILED: 0}
    for planned in plan:
        counts[planned.action] += 1
    return counts
