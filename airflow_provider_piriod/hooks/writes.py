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
import time
import unicodedata
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodInputError,
    PiriodResponseError,
    PiriodValidationError,
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
#: a lookup by write key reads at most this many objects (1,000 pages) when Piriod ignores the filter
MAX_LOOKUP_OBJECTS = 100_000
#: an object id or a status is quoted in an error up to this many characters
SHOWN_CHARS = 40
#: :func:`folded` reads a number of at most this many digits and this exponent; longer is text
MAX_NUMBER_DIGITS = 100


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
    """A printable key, in Unicode's composed form (NFC): a server that stores text composed must list
    the key exactly as it was sent, or the lookup could not recognise it."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise PiriodInputError(f"write_key must be a printable string of 1 to {MAX_KEY_CHARS} characters")
    return unicodedata.normalize("NFC", key)


def quoted(value: Any, secret: str) -> str:
    """A value Piriod sent (an id, a status) as an error quotes it: without the token, and short."""
    from airflow_provider_piriod.redaction import redact  # not at import: DAG files load this module

    return redact(str(value), secret)[:SHOWN_CHARS]


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

    def quoted(self, value: Any) -> str:
        return quoted(value, self.settings.token)

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
            found = self.find_earlier_create(resource, key)
            if found is not None:
                self.log.info(
                    "Piriod %s with this write key exists already (%s): not created again",
                    resource.label,
                    self.quoted(found["id"]),
                )
                return found
        for resolution in range(MAX_RESOLUTIONS + 1):
            try:
                created = self.transport.write("POST", resource.path, encode(body), f"create {resource.label}")
            except PiriodAmbiguousWriteError as exc:
                if resolution == MAX_RESOLUTIONS:
                    raise
                self.log.warning("%s; looking the %s up by its write key", exc, resource.label)
                found = self.resolve(resource, key, exc)
                if found is None and self.settled(exc, resource.label):
                    found = self.resolve(resource, key, exc)
                if found is not None:
                    return found
                continue  # not there: Piriod did not create it, so sending it again is safe
            if is_created_object(created, key):
                return created
            return self.find_created(resource, key, created)
        raise AssertionError("unreachable")  # the loop returns or raises

    def settled(self, ambiguity: PiriodAmbiguousWriteError, label: str) -> bool:
        """After a write that got no answer at all, Piriod may still be carrying it out: a look made now could
        miss it. Wait as long again as the answer was waited for, then look again (True). A write Piriod
        answered (a 5xx, an unusable 2xx) had been dealt with: no wait (False)."""
        if ambiguity.status_code is not None:
            return False
        wait = self.settings.timeout
        self.log.info("Not seen yet; Piriod may still be working on it: looking at the %s again in %g s", label, wait)
        time.sleep(wait)
        return True

    def find_earlier_create(self, resource: Resource, key: str) -> dict[str, Any] | None:
        """Before a retried task sends: its earlier try may have made the object. A lookup that cannot tell
        sends nothing, and the create stays ambiguous."""
        earlier = PiriodAmbiguousWriteError(
            f"an earlier try of this task may have created the {resource.label} (Piriod POST {resource.path})",
            method="POST",
            path=resource.path,
        )
        return self.resolve(resource, key, earlier)

    def resolve(self, resource: Resource, key: str, ambiguity: PiriodAmbiguousWriteError) -> dict[str, Any] | None:
        """After an ambiguous create: the object with ``key``, or None when it surely is not there. A lookup
        that cannot tell (it failed, or cannot read the objects) leaves the create ambiguous."""
        try:
            return self.find_by_key(resource, key)
        except PiriodError as exc:
            raise still_ambiguous(
                ambiguity, "looking it up by its write key", f"the {resource.label} exists", exc
            ) from exc

    def find_created(self, resource: Resource, key: str, answer: Any) -> dict[str, Any]:
        """A 2xx whose body is not the object carrying ``key`` (no id, metadata without the key): Piriod made
        something, so the object is looked up by key, never sent again."""
        what = "metadata without this write key" if isinstance(answer, dict) and has_id(answer) else "no id"
        ambiguity = PiriodAmbiguousWriteError(
            f"Piriod POST {resource.path} answered 2xx with {what} ({type(answer).__name__})",
            method="POST",
            path=resource.path,
        )
        found = self.resolve(resource, key, ambiguity)
        if found is not None:
            return found
        raise PiriodResponseError(
            f"Piriod POST {resource.path}: answered 2xx with {what}, and no {resource.label} with this write key "
            "exists",
            method="POST",
            path=resource.path,
        )

    def find_by_key(self, resource: Resource, key: str) -> dict[str, Any] | None:
        """The object whose metadata holds ``key``, or None. Checked on the objects themselves, so a Piriod
        that ignored the filter costs a longer scan (up to ``MAX_LOOKUP_OBJECTS``), never a wrong answer.
        An object that cannot be told apart (see :meth:`carries_key`), two objects with the key, or a scan
        cut short raise: none of them can tell that the object is not there."""
        params = {f"metadata__{WRITE_KEY_FIELD}": key, "page_size": "100"}
        matches: dict[str, dict[str, Any]] = {}  # by id: an object listed twice is one match
        scanned = 0
        try:
            for item in self.transport.iter_list(resource, params, 1):
                scanned += 1
                if self.carries_key(item, resource, key):
                    matches[str(item["id"])] = item
                if scanned >= MAX_LOOKUP_OBJECTS:
                    break
        except PiriodValidationError as exc:  # the lookup's 400 is no refusal of the write
            raise PiriodResponseError(f"the lookup by write key was not accepted: {exc}", path=resource.path) from exc
        if scanned > len(matches):
            self.log.warning(
                "Piriod ignored the metadata__%s filter on %s: %d objects scanned to find the write key",
                WRITE_KEY_FIELD,
                resource.name,
                scanned,
            )
        if len(matches) > 1:
            ids = ", ".join(self.quoted(object_id) for object_id in list(matches)[:5])
            raise PiriodError(f"{len(matches)} {resource.name} carry the same write key ({ids}): resolve by hand")
        if not matches and scanned >= MAX_LOOKUP_OBJECTS:
            raise PiriodResponseError(
                f"Piriod ignored the metadata__{WRITE_KEY_FIELD} filter on {resource.name}, and the first "
                f"{MAX_LOOKUP_OBJECTS} objects do not carry the write key: stopped looking",
                path=resource.path,
            )
        return next(iter(matches.values()), None)

    def carries_key(self, item: Any, resource: Resource, key: str) -> bool:
        """Whether a listed object carries ``key`` (a key stored back as a number counts). Raises when it cannot
        be told: metadata not shown as an object, our key on an object without an id, or a key that differs
        from ours only in letter case or Unicode form (a server that folds text may have stored ours so)."""
        value = self.write_key_of(item, resource)
        if value is None:
            return False
        text = key_text(value)
        if text == key:
            if not has_id(item):
                raise PiriodResponseError(
                    f"Piriod lists the {resource.label} with this write key without an id", path=resource.path
                )
            return True
        if text is None or folded(text) == folded(key):  # only writes like these set the key: ours, altered?
            how = f"stored as {type(value).__name__}" if text is None else "that differs from this one only in form"
            raise PiriodResponseError(
                f"Piriod lists {resource.label} {self.quoted(item.get('id'))!r} with a write key {how} (letter "
                "case, Unicode form, spaces or number format): whether it is the one created cannot be told",
                path=resource.path,
            )
        return False

    def write_key_of(self, item: Any, resource: Resource) -> Any:
        """The write key in a listed object's metadata (None if it has none). Metadata not shown, null, or not
        an object raises: the key might be there."""
        metadata = item.get("metadata", ...) if isinstance(item, dict) else ...
        if isinstance(metadata, Mapping):
            return metadata.get(WRITE_KEY_FIELD)
        object_id = self.quoted(item.get("id")) if isinstance(item, dict) else "?"
        kind = "null" if metadata is None else type(metadata).__name__
        shown = "does not show the metadata of" if metadata is ... else "shows the metadata of"
        raise PiriodResponseError(
            f"Piriod {shown} {resource.label} {object_id!r}{'' if metadata is ... else ' as ' + kind}: a write key "
            "cannot be looked up in it",
            path=resource.path,
        )

    # ------------------------------------------------------------------ updates, archives, actions

    def update(self, resource: Resource, object_id: str, data: dict[str, Any]) -> Any:
        """PATCH ``data``; an answer that is another object (an id not ``object_id``'s), or no object, is refused."""
        self.check_allowed(resource, "update")
        path = resource.object_path(object_id)
        answer = self.transport.write("PATCH", path, encode(data), f"update {resource.label}")
        if isinstance(answer, dict) and has_id(answer) and not is_object(answer, object_id):
            other = f"{resource.label} {self.quoted(answer['id'])!r}"
        elif answer is not None and not isinstance(answer, dict):
            other = f"a JSON {type(answer).__name__}"
        else:
            return answer  # the object, one without an id, or an empty 2xx
        raise PiriodResponseError(
            f"Piriod answered the update of {resource.label} {object_id!r} with {other}: not counted as updated",
            method="PATCH",
            path=path,
        )

    def archive(self, resource: Resource, object_id: str) -> Any:
        self.check_allowed(resource, "archive")
        return self.transport.write("DELETE", resource.object_path(object_id), None, f"archive {resource.label}")

    def run_action(
        self, resource: Resource, object_id: str, action_name: str, data: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool]:
        """Run ``action`` unless the object already has one of its done statuses; a lost answer is resolved by
        reading the status back, and the action is sent again only while the object is not done. Every
        answer and read must be the object asked for. Returns the object and whether the action was sent."""
        self.check_allowed(resource, "action")
        action = resource.action(action_name)
        what = f"{action.name} {resource.label}"
        object_path = resource.object_path(object_id)
        current = self.transport.get_object(resource, object_id)
        ambiguity: PiriodAmbiguousWriteError | None = None
        sent = False
        for resolution in range(MAX_RESOLUTIONS + 1):
            if self.is_done(current, resource, object_id, action.done, ambiguity):
                return current, sent
            try:
                sent = True
                body = None if data is None else encode(data)
                answer = self.transport.write(action.method, action.path(object_path), body, what, once=True)
            except PiriodAmbiguousWriteError as exc:
                if resolution == MAX_RESOLUTIONS:
                    raise
                self.log.warning("%s; reading the %s's status back", exc, resource.label)
                current, ambiguity = self.read_back(resource, object_id, exc), exc
                if not has_status(current, action.done) and self.settled(exc, resource.label):
                    current = self.read_back(resource, object_id, exc)
                continue
            if is_object(answer, object_id) and has_status(answer, action.done):
                return answer, sent
            current = self.transport.get_object(resource, object_id)  # an empty, partial or odd answer
            if has_status(current, action.done):
                return current, sent
            raise PiriodResponseError(
                f"Piriod accepted {what} {object_id!r}, but its status is {self.quoted(status_of(current))!r}, not "
                f"one of {sorted(action.done)}: not counted as done",
                method=action.method,
                path=action.path(object_path),
            )
        raise AssertionError("unreachable")

    def is_done(
        self,
        obj: dict[str, Any],
        resource: Resource,
        object_id: str,
        done: Collection[str],
        ambiguity: PiriodAmbiguousWriteError | None,
    ) -> bool:
        """Whether ``obj`` has one of the ``done`` statuses. A status that is not text (missing, null, a number)
        cannot say, nor, after an ambiguous action, one the registry does not list for the resource: only a
        documented status that is not done lets the action be sent again. Otherwise nothing is sent, and an
        ambiguous action stays ambiguous."""
        status = status_of(obj)
        if isinstance(status, str):
            if has_status(obj, done):
                return True
            if ambiguity is None or has_status(obj, resource.statuses):
                return False
            problem = f"a status Piriod does not document for it ({self.quoted(status)!r})"
        else:
            problem = f"no status that can be read ({type(status).__name__})"
        unreadable = PiriodResponseError(
            f"Piriod shows {resource.label} {object_id!r} with {problem}: whether it is "
            f"{' or '.join(sorted(done))} cannot be told",
            path=resource.object_path(object_id),
        )
        if ambiguity is None:
            raise unreadable
        raise still_ambiguous(ambiguity, f"reading the {resource.label}'s status back", "it was done", unreadable)

    def read_back(self, resource: Resource, object_id: str, ambiguity: PiriodAmbiguousWriteError) -> dict[str, Any]:
        """The object after an ambiguous action; a read that fails leaves the action ambiguous."""
        try:
            return self.transport.get_object(resource, object_id)
        except PiriodError as exc:
            raise still_ambiguous(ambiguity, f"reading the {resource.label}'s status back", "it was done", exc) from exc

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


def still_ambiguous(
    ambiguity: PiriodAmbiguousWriteError, check: str, unknown: str, failure: PiriodError
) -> PiriodAmbiguousWriteError:
    """The ambiguous write's error when the ``check`` meant to resolve it failed."""
    return PiriodAmbiguousWriteError(
        f"{ambiguity}; {check} failed ({failure}): whether {unknown} is unknown, check before running again",
        status_code=ambiguity.status_code,
        method=ambiguity.method,
        path=ambiguity.path,
    )


def has_id(obj: Any) -> bool:
    value = obj.get("id") if isinstance(obj, dict) else None
    return isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) != ""


def is_object(answer: Any, object_id: str) -> bool:
    """Whether an answer is the object ``object_id`` (``12`` answers ``"12"``)."""
    return has_id(answer) and str(answer["id"]) == object_id


def key_text(value: Any) -> str | None:
    """A write key as text: Piriod may store a key of digits back as a number."""
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def folded(text: str) -> str:
    """``text`` as a lenient server may compare it: in any letter case or Unicode form, without surrounding
    spaces, and a number however written (``"42"``, ``"42.0"``, ``"4.2e1"``, ``"042"``)."""
    text = unicodedata.normalize("NFKC", text).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text.casefold()
    digits = len(number.as_tuple().digits)
    if not number.is_finite() or digits > MAX_NUMBER_DIGITS or abs(number.adjusted()) > MAX_NUMBER_DIGITS:
        return text.casefold()  # "1e999999" is no number a record means
    return f"{number.normalize(Context(prec=digits)):f}"  # every digit kept: 31 digits stay 31


def is_created_object(answer: Any, key: str) -> bool:
    """Whether a create's 2xx body is the object made: an id, and our write key if it shows metadata (it was
    sent with it, so metadata shown without it, or null, is another object or a server that lost it)."""
    if not has_id(answer):
        return False
    metadata = answer.get("metadata", ...)
    return metadata is ... or (isinstance(metadata, Mapping) and key_text(metadata.get(WRITE_KEY_FIELD)) == key)


def has_status(obj: Any, statuses: Collection[str]) -> bool:
    """Whether ``obj``'s status is one of ``statuses``, in any form :func:`folded` ignores (``FINALIZED`` is
    finalized, and so is its full-width form)."""
    status = status_of(obj)
    return isinstance(status, str) and folded(status) in {folded(s) for s in statuses}


def status_of(obj: Any) -> Any:
    return obj.get("status") if isinstance(obj, dict) else None


def encode(data: Mapping[str, Any]) -> bytes:
    """JSON with money exact: a Decimal goes on the wire with the same digits."""
    return jsoncodec.dumps(data).encode()
