"""Writes to Piriod, each with its effect at most once, although Piriod documents no idempotency keys.

An update (PATCH) or an archive (DELETE) sets a state: sending it twice does no harm, so the transport
retries it as it retries a read. A create or an action is different: when its answer is lost after the
request left (a timeout, a reset, a 5xx), Piriod may have acted on it, and sending it again blindly could
create a second invoice. Here such an *ambiguous* failure is resolved by looking:

* a **create** carries a write key in the object's ``metadata`` (``airflow_write_key``). After an ambiguous
  failure, and before the first attempt when the caller says the write may have been made already (a
  retried task), the object is looked up by that key; it is created only if it is not there.
* an **action** is checked against the object's status: an invoice already finalized is not finalized
  again, and a lost answer is resolved by reading the status back.

Record contents are personal data: nothing here logs them above DEBUG.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodInputError,
    PiriodResponseError,
)
from airflow_provider_piriod.resources import WRITE_METHODS, Resource

if TYPE_CHECKING:
    from airflow_provider_piriod.connection import PiriodSettings
    from airflow_provider_piriod.transport.sync import PiriodTransport

#: where a create's write key is kept in the object's ``metadata``
WRITE_KEY_FIELD = "airflow_write_key"
#: how many times an ambiguous create or action is looked up and, if not there, sent again
MAX_RESOLUTIONS = 3
MAX_KEY_CHARS = 200


def check_data(data: Any, argument: str = "data") -> dict[str, Any]:
    """A write's body must be a JSON object whose text can be sent; refused before any request otherwise."""
    if not isinstance(data, Mapping):
        raise PiriodInputError(f"{argument} must be a mapping of Piriod fields; got {type(data).__name__}")
    try:
        jsoncodec.dumps(data)
    except (TypeError, ValueError) as exc:
        raise PiriodInputError(f"{argument} cannot be sent as JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    return dict(data)


def check_write_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise PiriodInputError(f"write_key must be a printable string of 1 to {MAX_KEY_CHARS} characters")
    return key


@dataclass(frozen=True)
class TaskIdentity:
    """Who is writing: the parts a default write key is derived from, and whether this is a retry."""

    parts: tuple[str, ...]  # dag_id, task_id, run_id, map_index
    retried: bool


def task_identity() -> TaskIdentity | None:
    """The running task instance's identity, or None outside a task (a script, a test calling the hook)."""
    from airflow_provider_piriod.compat import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:  # no task is running: Airflow raises its own error kinds for that, per version
        return None
    parts = (ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))
    return TaskIdentity(tuple(str(part) for part in parts), int(getattr(ti, "try_number", 1) or 1) > 1)


def derived_write_key(*parts: Any) -> str:
    """A write key that the same parts (dag, task, run, map index, record) always give, and nothing else does."""
    text = jsoncodec.dumps([str(part) for part in parts])
    return "af1-" + hashlib.sha256(text.encode()).hexdigest()[:40]


class Writer:
    """The writes of one hook: creates resolved by write key, actions by status, both after ambiguity only."""

    def __init__(self, transport: PiriodTransport, settings: PiriodSettings, log: Any) -> None:
        self.transport = transport
        self.settings = settings
        self.log = log
        self._ordinals = itertools.count()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ creates

    def next_default_key(self, resource: Resource, context_parts: tuple[Any, ...] | None) -> str:
        """The key of a create the caller gave none for: from the running task and the create's place in it (a
        retried task makes its creates in the same order, so it computes the same keys), or random outside one."""
        with self._lock:
            ordinal = next(self._ordinals)
        if context_parts is None:
            return "af1-" + uuid.uuid4().hex  # still resolves a lost answer within this call
        return derived_write_key(*context_parts, resource.name, ordinal)

    def create(self, resource: Resource, data: dict[str, Any], key: str, *, look_first: bool) -> dict[str, Any]:
        """Create the object once: found by ``key`` if it exists already, else sent; lost answers looked up."""
        self.check_allowed(resource, "create")
        body = with_write_key(data, key)
        if look_first:
            found = self.find_by_key(resource, key)
            if found is not None:
                self.log.info(
                    "Piriod %s with this write key exists already (%s): not created again",
                    resource.label,
                    found.get("id"),
                )
                return found
        for resolution in range(MAX_RESOLUTIONS + 1):
            try:
                created = self.transport.write("POST", resource.path, encode(body), f"create {resource.label}")
            except PiriodAmbiguousWriteError as exc:
                if resolution == MAX_RESOLUTIONS:
                    raise
                self.log.warning("%s; looking the %s up by its write key", exc, resource.label)
                found = self.find_by_key(resource, key)
                if found is not None:
                    return found
                continue  # not there: Piriod did not create it, so sending it again is safe
            if not isinstance(created, dict) or "id" not in created:  # 2xx, yet no object: look for it
                found = self.find_by_key(resource, key)
                if found is not None:
                    return found
                raise PiriodResponseError(
                    f"Piriod POST {resource.path}: answered {type(created).__name__} without an object, and no "
                    f"{resource.label} with this write key exists",
                    method="POST",
                    path=resource.path,
                )
            return created
        raise AssertionError("unreachable")  # the loop returns or raises

    def find_by_key(self, resource: Resource, key: str) -> dict[str, Any] | None:
        """The object whose metadata holds ``key``, or None. Checked on the objects themselves, so a Piriod
        that ignored the filter costs a longer scan, never a wrong answer. More than one is an error."""
        params = {f"metadata__{WRITE_KEY_FIELD}": key, "page_size": "100"}
        matches, scanned = [], 0
        for item in self.transport.iter_list(resource, params, 1):
            scanned += 1
            metadata = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(metadata, dict) and metadata.get(WRITE_KEY_FIELD) == key:
                matches.append(item)
        if scanned > len(matches):
            self.log.warning(
                "Piriod ignored the metadata__%s filter on %s: %d objects scanned to find the write key",
                WRITE_KEY_FIELD,
                resource.name,
                scanned,
            )
        if len(matches) > 1:
            ids = ", ".join(str(m.get("id")) for m in matches[:10])
            raise PiriodError(f"{len(matches)} {resource.name} carry the same write key ({ids}): resolve by hand")
        return matches[0] if matches else None

    # ------------------------------------------------------------------ updates, archives, actions

    def update(self, resource: Resource, object_path: str, data: dict[str, Any]) -> Any:
        self.check_allowed(resource, "update")
        return self.transport.write("PATCH", object_path, encode(data), f"update {resource.label}")

    def archive(self, resource: Resource, object_path: str) -> Any:
        self.check_allowed(resource, "archive")
        return self.transport.write("DELETE", object_path, None, f"archive {resource.label}")

    def run_action(
        self, resource: Resource, object_path: str, action_name: str, data: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool]:
        """Run ``action`` unless the object already has one of its done statuses; a lost answer is resolved by
        reading the status back, and the action is sent again only while the object is not done.
        Returns the object and whether the action was sent."""
        self.check_allowed(resource, "action")
        action = resource.action(action_name)
        what = f"{action.name} {resource.label}"
        current = self.transport.get_json(object_path)
        sent = False
        for resolution in range(MAX_RESOLUTIONS + 1):
            if status_of(current) in action.done:
                return current, sent
            try:
                sent = True
                body = None if data is None else encode(data)
                answer = self.transport.write(action.method, action.path(object_path), body, what)
            except PiriodAmbiguousWriteError as exc:
                if resolution == MAX_RESOLUTIONS:
                    raise
                self.log.warning("%s; reading the %s's status back", exc, resource.label)
                current = self.transport.get_json(object_path)
                continue
            if isinstance(answer, dict) and status_of(answer) in action.done:
                return answer, sent
            return self.transport.get_json(object_path), sent  # an empty or partial answer: the object as it is
        raise AssertionError("unreachable")

    def check_allowed(self, resource: Resource, write: str) -> None:
        if self.settings.read_only:
            raise PiriodInputError(
                f"connection {self.settings.conn_id!r} is read-only (extra read_only=true): "
                f"{write} on {resource.name} refused, nothing sent"
            )
        if write != "action":
            resource.check_write(write)
            assert write in WRITE_METHODS


def with_write_key(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data`` with ``key`` in its metadata (a copy: the caller's dict is left alone)."""
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise PiriodInputError(f"data['metadata'] must be a mapping; got {type(metadata).__name__}")
    return {**data, "metadata": {**(metadata or {}), WRITE_KEY_FIELD: key}}


def status_of(obj: Any) -> Any:
    return obj.get("status") if isinstance(obj, dict) else None


def encode(data: Mapping[str, Any]) -> bytes:
    """JSON with money exact: a Decimal goes on the wire with the same digits."""
    return jsoncodec.dumps(data).encode()
