"""What the event trigger has already announced, measured on Piriod's own clock.

A :class:`Watermark` is the newest ``created`` value seen plus the ids seen within ``lookback`` of it.
Each poll re-reads that window (objects committed late keep an earlier ``created``), announces the ids
it has not seen, and moves forward. Every time involved is Piriod's: ``created`` values, bounded by the
``Date`` of Piriod's answers so one object dated ahead cannot hide the objects after it; the local
clock stands in only when Piriod sends no ``Date``. :class:`WatermarkStore` keeps the watermark in
Airflow's Asset State Store so a restarted triggerer resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

#: the version of the stored JSON; another value is ignored (the trigger starts from "now" again)
STATE_VERSION = 1
#: objects dated further than this after Piriod's clock are not announced (a typo, an import)
MAX_AHEAD = timedelta(hours=1)
#: ids longer than this are no Piriod ids (theirs are ~30 characters); such objects are skipped
MAX_ID_LENGTH = 256
#: the stored JSON stays under this many bytes (Airflow's store refuses larger values)
STATE_BUDGET = 48_000
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


def parse_created(value: Any) -> datetime | None:
    """Any of Piriod's timestamp shapes (``...Z``, ``...-04:00``, ``YYYY-MM-DD HH:MM:SS`` in UTC) or None."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = f"{text[:-1]}+00:00"  # Python 3.10 does not read "Z"
    try:
        moment = datetime.fromisoformat(text)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)  # one zone for every comparison and for the stored text
    except (ValueError, OverflowError):
        return None


def query_moment(moment: datetime) -> str:
    """``moment`` as a ``created__gte`` value: UTC, whole seconds rounded down (the window only grows)."""
    return f"{moment.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()}Z"


def object_key(object_id: Any) -> str | None:
    """The id as the text it is remembered by; None for anything that is no Piriod id."""
    if isinstance(object_id, bool):
        return None
    text = str(object_id) if isinstance(object_id, int) and object_id.bit_length() <= 64 else object_id
    if isinstance(text, str) and text.strip() and len(text) <= MAX_ID_LENGTH:
        return text
    return None


def _minus(moment: datetime, seconds: float) -> datetime:
    try:
        return moment - timedelta(seconds=seconds)
    except OverflowError:
        return EARLIEST


class Verdict(NamedTuple):
    """What one window read found: the new ids, the watermark after them, and what could not be judged."""

    ids: list[Any]
    watermark: Watermark
    unreadable: int
    ahead: list[Any]


@dataclass(frozen=True)
class Watermark:
    """The newest ``created`` seen (None: nothing existed yet) and every id seen since ``newest - lookback``.

    ``ignore_through``: objects created at or before it are not judged (set when the stored state had to
    leave out older ids to fit the store; see :meth:`to_json`).
    """

    newest: datetime | None
    seen: dict[str, datetime] = field(default_factory=dict)
    ignore_through: datetime | None = None

    def window_start(self, lookback: float) -> datetime | None:
        """Objects created before this were judged by an earlier poll; None means read everything."""
        return None if self.newest is None else _minus(self.newest, lookback)

    def created_gte(self, lookback: float) -> str | None:
        start = self.window_start(lookback)
        return None if start is None else query_moment(start)

    def advance(self, objects: Iterable[dict[str, Any]], lookback: float, now: datetime | None = None) -> Verdict:
        """What one window read means: the ids never seen (oldest first) and the moved watermark.

        ``now`` is Piriod's clock (its ``Date`` header; the local clock when it sent none). The watermark
        never passes it, so an object dated ahead cannot hide the ones created after it; objects dated
        more than :data:`MAX_AHEAD` ahead are not announced (``Verdict.ahead``). Objects older than the
        window are ignored even if the server sent them (it may not know ``created__gte``); objects
        without a readable ``created`` or id are counted (``Verdict.unreadable``).
        """
        now = now or datetime.now(timezone.utc)
        start, limit = self.window_start(lookback), now + MAX_AHEAD
        seen = dict(self.seen)
        fresh: list[tuple[datetime, str, Any]] = []
        unreadable, ahead = 0, []
        newest = self.newest
        for item in objects:
            created, key = parse_created(item.get("created")), object_key(item.get("id"))
            if created is None or key is None:
                unreadable += 1
                continue
            too_old = start is not None and created < start
            if too_old or key in seen or (self.ignore_through is not None and created <= self.ignore_through):
                continue
            if created > limit:
                ahead.append(item.get("id"))
                continue
            seen[key] = created
            fresh.append((created, key, item.get("id")))
            if newest is None or min(created, now) > newest:
                newest = min(created, now)
        fresh.sort(key=lambda entry: entry[:2])
        moved = Watermark(newest, seen, self.ignore_through).pruned(lookback)
        return Verdict([object_id for _, _, object_id in fresh], moved, unreadable, ahead)

    def pruned(self, lookback: float) -> Watermark:
        """The same watermark without ids that fell out of the window (the next poll cannot return them)."""
        start = self.window_start(lookback)
        if start is None:
            return self
        ignore = self.ignore_through if self.ignore_through is not None and self.ignore_through >= start else None
        return Watermark(self.newest, {k: c for k, c in self.seen.items() if c >= start}, ignore)

    def to_json(self, budget: int = STATE_BUDGET) -> dict[str, Any]:
        """The stored form, at most ``budget`` bytes: the newest ids first; if older ones must be left out,
        objects up to the newest ``created`` left out are ignored after a restart (never announced twice)."""
        kept: dict[str, str] = {}
        size = 200  # the other keys, with room for two timestamps
        ignore = self.ignore_through
        for key, created in sorted(self.seen.items(), key=lambda entry: entry[1], reverse=True):
            text = created.isoformat()
            entry = len(json.dumps(key)) + len(json.dumps(text)) + 4  # '"key": "text", '
            if size + entry > budget:
                ignore = max(created, ignore or EARLIEST)
                break
            kept[key] = text
            size += entry
        if ignore is not None and self.newest is not None:
            ignore = min(ignore, self.newest)  # never past the newest object: later ones must still be judged
        if ignore is not None and ignore != self.ignore_through:
            kept = {key: text for key, text in kept.items() if self.seen[key] > ignore}
        return {
            "version": STATE_VERSION,
            "newest": None if self.newest is None else self.newest.isoformat(),
            "seen": kept,
            "ignore_through": None if ignore is None else ignore.isoformat(),
        }

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """The stored watermark, or None when it cannot be read (then: start from now)."""
        if not isinstance(value, dict) or value.get("version") != STATE_VERSION:
            return None
        newest, seen, ignore = value.get("newest"), value.get("seen"), value.get("ignore_through")
        moments = {str(key): parse_created(created) for key, created in seen.items()} if isinstance(seen, dict) else {}
        if (
            not isinstance(seen, dict)
            or (newest is not None and parse_created(newest) is None)
            or (ignore is not None and parse_created(ignore) is None)
            or any(moment is None for moment in moments.values())
        ):
            return None
        return cls(
            parse_created(newest),
            {key: moment for key, moment in moments.items() if moment is not None},
            parse_created(ignore),
        )


def batches(ids: list[Any], size: int) -> Iterator[list[Any]]:
    """``ids`` in consecutive chunks of at most ``size``."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class WatermarkStore:
    """Load and save one trigger's watermark in the Asset State Store of the asset it watches.

    Airflow 3.3.2+ has async accessors; 3.3.0 and 3.3.1 only blocking ones, called in a thread. Where
    there is no store (Airflow before 3.3, or a trigger run outside a watcher) nothing is kept.
    """

    def __init__(self, accessors: Any, key: str) -> None:
        self.key = key
        self.accessors = accessors
        self.problem: str | None = None if accessors is not None else "this Airflow has no Asset State Store"
        #: set by :meth:`load` when something was stored but could not be read
        self.unreadable = False

    @property
    def available(self) -> bool:
        return self.problem is None

    async def load(self) -> Watermark | None:
        if not self.available:
            return None
        try:
            value = await self._call("aget", "get", self.key, None)
        except ValueError as exc:  # several assets share this trigger: the store cannot tell which to use
            self.problem = f"the Asset State Store cannot be used ({exc}); give each watcher distinct arguments"
            return None
        watermark = Watermark.from_json(value)
        self.unreadable = value is not None and watermark is None
        return watermark

    async def save(self, watermark: Watermark) -> None:
        if self.available:
            await self._call("aset", "set", self.key, watermark.to_json())

    async def _call(self, async_name: str, name: str, *args: Any) -> Any:
        method = getattr(self.accessors, async_name, None)
        if method is not None:
            return await method(*args)
        return await asyncio.to_thread(getattr(self.accessors, name), *args)
