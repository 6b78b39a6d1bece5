"""The write operators: upsert records, run an action on many objects, create one object.

Each refuses bad arguments when the DAG is parsed, sends nothing before ``execute``, and reports
``{"created", "updated", "unchanged", "failed", "ids"}``. Exactly-once comes from the hook (see
:mod:`airflow_provider_piriod.hooks.writes`); this module decides what to write.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_piriod.compat import BaseOperator
from airflow_provider_piriod.connection import DEFAULT_CONN_ID
from airflow_provider_piriod.exceptions import PiriodInputError, PiriodResponseError, PiriodValidationError
from airflow_provider_piriod.hooks.writes import folded, has_status, quoted
from airflow_provider_piriod.operators.upsert_plan import (
    CREATE,
    FAILED,
    UNCHANGED,
    UPDATE,
    Planned,
    check_match_on,
    check_records,
    match_filter,
    match_keys,
    match_value,
    object_match_value,
    plan_record,
    summary,
)
from airflow_provider_piriod.protocol import validate_max_workers, validate_object_ids
from airflow_provider_piriod.resources import get_resource

if TYPE_CHECKING:
    from airflow_provider_piriod.compat import Context
    from airflow_provider_piriod.hooks.piriod import PiriodHook

#: at most this many refused records are named in the task's error (all are in the output file)
NAMED_FAILURES = 20
#: and each one's error up to this many characters (field names and short messages, never record values)
ERROR_CHARS = 400


class _PiriodWriteOperator(BaseOperator):
    """The connection, the hook and the outlet every write operator shares."""

    ui_color = "#fdf0e8"

    def __init__(
        self, *, resource: str, piriod_conn_id: str = DEFAULT_CONN_ID, test_mode: bool | None = None, **kwargs: Any
    ) -> None:
        from airflow_provider_piriod.operators.piriod import piriod_asset

        spec = get_resource(resource)
        kwargs.setdefault("outlets", [piriod_asset(piriod_conn_id, spec.name)])
        super().__init__(**kwargs)
        self.resource = spec.name
        self.piriod_conn_id = piriod_conn_id
        self.test_mode = test_mode

    @cached_property
    def hook(self) -> PiriodHook:
        from airflow_provider_piriod.hooks.piriod import PiriodHook

        return PiriodHook(self.piriod_conn_id, test_mode=self.test_mode)

    @property
    def spec(self) -> Any:
        return get_resource(self.resource)

    def _check_writable(self) -> None:
        """A read-only connection fails the task before its first request, even a lookup's."""
        settings = self.hook.settings
        if settings.read_only:
            raise PiriodInputError(
                f"connection {settings.conn_id!r} is read-only (extra read_only=true): {type(self).__name__} "
                f"writes to {self.resource}, nothing sent (dry_run=True reads and plans without writing)"
            )

    def _finish(self, plan: list[Planned], started: float, verb: str, output_path: str | None) -> dict[str, Any]:
        """The report, the one summary line, and the task's failure if any record was not written (refused by
        Piriod, or with no single object it surely matches); the output file is written either way."""
        counts = summary(plan)
        self.log.info(
            "%s %d Piriod %ss in %.1f s through connection %r: %s (%d requests)",
            verb,
            len(plan),
            self.spec.label,
            time.monotonic() - started,
            self.piriod_conn_id,
            ", ".join(f"{n} {name}" for name, n in counts.items()),
            self.hook.tally.requests,
        )
        report: dict[str, Any] = dict(counts)
        if output_path:  # written even when the task fails: it names every refused record, the error only some
            from airflow_provider_piriod.operators.ndjson import write_ndjson

            report["path"], _ = write_ndjson(output_path, (p.report_line() for p in plan))
        else:
            report["ids"] = [p.object_id for p in plan]
        failures = [p for p in plan if p.action == FAILED]
        if failures:
            named = "; ".join(f"records[{p.index}]: {str(p.error)[:ERROR_CHARS]}" for p in failures[:NAMED_FAILURES])
            more = f"; and {len(failures) - NAMED_FAILURES} more" if len(failures) > NAMED_FAILURES else ""
            where = f" (every record's outcome is in {report['path']})" if output_path else ""
            raise PiriodInputError(
                f"{len(failures)} of {len(plan)} {self.spec.label}s not written: {named}{more}{where}"
            )
        return report

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The Piriod resource written, as an output dataset (once execute resolved the connection)."""
        from airflow_provider_piriod.lineage import operator_lineage

        return operator_lineage(self, output=None, written=True)


class PiriodUpsertOperator(_PiriodWriteOperator):
    """
    Create or update records in Piriod, matched on one field: a CRM or warehouse table kept in sync.

    Each record is matched on ``match_on`` (``"tax_id"``, ``"email"``, or a metadata key such as
    ``"metadata.crm_id"``): created if no object matches, PATCHed with only the fields that differ if one
    does, left alone if none differ. Creates are exactly-once (a write key in ``metadata``; see the
    README); re-running the task writes nothing twice. A record Piriod refuses fails the task after the
    others were written, naming each refused record and field.

    :param resource: a resource that accepts create and update (``customers``, ``invoices``, ``subscriptions``).
    :param records: a list of mappings, an upstream ``XComArg``, or the URI of an NDJSON file (templated).
    :param match_on: the field or ``metadata.<key>`` that identifies a record (templated).
    :param max_workers: writes in flight at once (1 to 64).
    :param dry_run: look up and return the plan (with ``"plan"``: action and changed field names per record)
        without writing.
    :param output_path: write the per-record report here as NDJSON and return the counts with ``"path"``.
    :param write_key: a name that replaces the task's identity in the records' write keys, for keys that
        stay the same across DAGs and runs (default: dag, task, run and map index).
    """

    template_fields: Sequence[str] = ("records", "match_on", "output_path", "write_key", "piriod_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"records": "json"}

    def __init__(
        self,
        *,
        resource: str,
        records: Any,
        match_on: str,
        max_workers: int = 8,
        dry_run: bool = False,
        output_path: str | None = None,
        write_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        spec = get_resource(resource)
        spec.check_write("create")
        spec.check_write("update")
        if isinstance(records, Mapping) or records is None or isinstance(records, (bytes, int, float)):
            raise PiriodInputError("records must be a list of mappings, an XComArg, or the URI of an NDJSON file")
        super().__init__(resource=resource, **kwargs)
        self.records = records
        self.match_on = check_match_on(match_on)
        self.max_workers = validate_max_workers(max_workers)
        self.plan_only = bool(dry_run)  # BaseOperator.dry_run is a method
        self.output_path = output_path
        self.write_key = write_key

    def execute(self, context: Context) -> dict[str, Any]:
        started = time.monotonic()
        match_on = check_match_on(self.match_on)
        records = check_records(self._loaded_records(), match_on)
        if not self.plan_only:
            self._check_writable()
        existing = self._existing(records, match_on)
        token = self.hook.settings.token
        plan = [
            plan_record(i, record, existing.get(folded(match_value(record, match_on) or ""), []), match_on, token)
            for i, record in enumerate(records)
        ]
        if self.plan_only:
            self.log.info("Dry run: %s; nothing written", ", ".join(f"{n} {k}" for k, n in summary(plan).items()))
            return {**summary(plan), "ids": [p.object_id for p in plan], "plan": [p.report_line() for p in plan]}
        from airflow_provider_piriod.operators.batch import Progress, refusal_text, run_each

        hook, prefix = self.hook, self._key_prefix()

        def write(planned: Planned) -> str:
            if planned.action == CREATE:
                key = _record_key(prefix, self.resource, match_on, planned.match)
                planned.object_id = str(hook.create_object(self.resource, planned.record, write_key=key)["id"])
            elif planned.action == UPDATE:
                hook.update_object(self.resource, planned.object_id or "", planned.changes)
            return planned.action

        def refused(planned: Planned, exc: PiriodValidationError) -> str:
            planned.action, planned.error = FAILED, refusal_text(exc)
            return FAILED

        todo = [p for p in plan if p.action in (CREATE, UPDATE)]
        run_each(
            todo, write, self.max_workers, Progress(self.log, f"Upsert of Piriod {self.resource}", len(todo)), refused
        )
        return self._finish(plan, started, "Upserted", self.output_path)

    def _loaded_records(self) -> Any:
        if isinstance(self.records, str):
            from airflow_provider_piriod.operators.ndjson import read_ndjson

            return read_ndjson(self.records)
        return list(self.records) if isinstance(self.records, Iterable) else self.records

    def _existing(self, records: list[dict[str, Any]], match_on: str) -> dict[str, list[dict[str, Any]]]:
        """The objects matching each record's value: one scan of the resource when that costs fewer requests
        than a filtered lookup per record; either way each match is checked on the object itself, and an
        object listed twice (a lookup whose filter Piriod ignored) is one match. Keyed by :func:`folded` value,
        so an object showing the value in another form is found, and the plan refuses it. An object a filtered
        lookup lists with no value to match on (null, a list) cannot be told apart from the record's: the task
        fails before any write."""
        values = {match_value(r, match_on) or "" for r in records}
        wanted: dict[str, set[str]] = {}  # a form an object may show -> the records (folded) it may be
        for v in values:
            for key in match_keys(v):
                wanted.setdefault(key, set()).add(folded(v))
        found: dict[str, dict[str, dict[str, Any]]] = {}
        token = self.hook.settings.token
        pages = math.ceil(self.hook.count_objects(self.resource) / 100)
        scanned = pages <= len(records)
        if scanned:
            objects: Iterable[dict[str, Any]] = self.hook.iter_object_json(
                self.resource, {}, page_size=100, max_workers=min(self.max_workers, max(pages, 1))
            )
        else:
            objects = self._lookups(sorted(v for v in values if v), match_on)
        for obj in objects:
            value = object_match_value(obj, match_on, self.spec.label, token)
            if value is None and not scanned:  # a filtered lookup listed it, yet it shows nothing to match
                raise PiriodResponseError(
                    f"Piriod lists {self.spec.label} {quoted(obj.get('id'), token)!r} for a lookup on {match_on} "
                    "without a value there to match: whether it is a record's cannot be told; nothing written"
                )
            if value is None:
                continue
            for record_key in wanted.get(folded(value), ()):
                found.setdefault(record_key, {})[str(obj["id"])] = obj
        return {value: list(by_id.values()) for value, by_id in found.items()}

    def _lookups(self, values: list[str], match_on: str) -> Iterable[dict[str, Any]]:
        """The objects each value's filtered lookup lists, ``max_workers`` lookups at a time."""
        from airflow_provider_piriod.concurrency import bounded_map

        def lookup(value: str) -> list[dict[str, Any]]:
            return list(self.hook.iter_object_json(self.resource, {match_filter(match_on): value}, page_size=100))

        with closing(bounded_map(lookup, values, self.max_workers, "piriod-lookup")) as lookups:
            for matches in lookups:
                yield from matches

    def _key_prefix(self) -> tuple[str, ...]:
        if self.write_key is not None:
            return (str(self.write_key),)
        from airflow_provider_piriod.hooks.writes import task_identity

        identity = task_identity()
        return identity.parts if identity is not None else ()


def _record_key(prefix: tuple[str, ...], resource: str, match_on: str, value: str) -> str:
    """A record's write key: the same task (or ``write_key``) and the same natural key give the same key."""
    from airflow_provider_piriod.hooks.writes import derived_write_key

    return derived_write_key(*prefix, resource, match_on, value)


class PiriodActionOperator(_PiriodWriteOperator):
    """
    Run one action (``finalize``, ``pause``, ``resume``, ...) on many objects; each at most once.

    An object already in the action's target state counts as ``unchanged``; one acted on as ``updated``.
    The report has the upsert's shape (``created`` is 0). With ``dry_run`` the objects are read and the
    report says what would be done.

    :param action: an action the registry lists for ``resource`` (checked when the DAG is parsed).
    :param object_ids: the ids (templated; an upstream ``XComArg`` works).
    """

    template_fields: Sequence[str] = ("object_ids", "output_path", "piriod_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"object_ids": "json"}

    def __init__(
        self,
        *,
        resource: str,
        action: str,
        object_ids: Any,
        max_workers: int = 8,
        dry_run: bool = False,
        output_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        get_resource(resource).action(action)
        super().__init__(resource=resource, **kwargs)
        self.action = action
        self.object_ids = object_ids
        self.max_workers = validate_max_workers(max_workers)
        self.plan_only = bool(dry_run)  # BaseOperator.dry_run is a method
        self.output_path = output_path

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_piriod.operators.batch import Progress, refusal_text, run_each

        started = time.monotonic()
        spec = self.spec
        if not self.plan_only:
            self._check_writable()
        ids = list(dict.fromkeys(validate_object_ids(self.object_ids, "object_ids", integers=spec.integer_ids)))
        done = spec.action(self.action).done
        plan = [Planned(i, object_id, UPDATE, {}, object_id) for i, object_id in enumerate(ids)]
        hook = self.hook

        def act(planned: Planned) -> str:
            if self.plan_only:
                current = hook.get_object(spec.name, planned.match).to_json()
                planned.action = UNCHANGED if has_status(current, done) else UPDATE
            else:
                _, acted = hook.apply_action(spec.name, planned.match, self.action)
                planned.action = UPDATE if acted else UNCHANGED
            return planned.action

        def refused(planned: Planned, exc: PiriodValidationError) -> str:
            planned.action, planned.error = FAILED, refusal_text(exc)
            return FAILED

        run_each(
            plan, act, self.max_workers, Progress(self.log, f"{self.action} on Piriod {spec.name}", len(plan)), refused
        )
        if self.plan_only:
            return {**summary(plan), "ids": ids, "plan": [p.report_line() for p in plan]}
        return self._finish(plan, started, f"Ran {self.action} on", self.output_path)


class PiriodCreateOperator(_PiriodWriteOperator):
    """
    Create one object (e.g. a draft invoice from upstream lines), exactly once, and return its JSON.

    :param data: the object's fields (templated; an upstream ``XComArg`` works). Money as ``Decimal`` or
        strings keeps every digit.
    :param write_key: the create's write key (default: derived from the task, so a retry finds its object).
    """

    template_fields: Sequence[str] = ("data", "write_key", "piriod_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"data": "json"}

    def __init__(self, *, resource: str, data: Any, write_key: str | None = None, **kwargs: Any) -> None:
        get_resource(resource).check_write("create")
        if not isinstance(data, Mapping) and not hasattr(data, "resolve"):  # a mapping or an XComArg
            raise PiriodInputError(f"data must be a mapping of Piriod fields or an XComArg; got {type(data).__name__}")
        super().__init__(resource=resource, **kwargs)
        self.data = data
        self.write_key = write_key

    def execute(self, context: Context) -> Any:
        from airflow_provider_piriod.operators.xcom import for_xcom

        self._check_writable()
        created = self.hook.create_object(self.resource, self.data, write_key=self.write_key)
        self.log.info(
            "Created Piriod %s %s through connection %r", self.spec.label, created.get("id"), self.piriod_conn_id
        )
        return for_xcom(created, where=self.spec.label)
