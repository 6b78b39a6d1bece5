"""What the event trigger has already announced, measured on Piriod's own clock.

A :class:`Watermark` is the newest ``created`` value seen plus the ids seen within ``lookback`` of it.
Each poll re-reads that window (objects committed late keep an earlier ``created``), announces the ids
it has not seen, and moves forward. Nothing here uses the local clock, so a triggerer whose clock is
off by hours still announces every object once. :class:`WatermarkStore` keeps it in Airflow's Asset
State Store so a restarted triggerer resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

#: the version of the stored JSON; another value is ignored (the trigger starts from "now" again)
STATE_VERSION = 1


def parse_created(value: Any) -> datetime | None:
    """Any of Piriod's timestamp shapes (``...Z``, ``...-04:00``, ``YYYY-MM-DD HH:MM:SS`` in UTC) or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = f"{text[:-1]}+00:00"  # Python 3.10 does not read "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def query_moment(moment: datetime) -> str:
    """``moment`` as a ``created__gte`` value: UTC, whole seconds rounded down (the window only grows)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Watermark:
    """The newest ``created`` seen (None: nothing existed yet) and every id seen since ``newest - lookback``."""

    newest: datetime | None
    seen: dict[str, datetime] = field(default_factory=dict)

    def window_start(self, lookback: float) -> datetime | None:
        """Objects created before this were judged by an earlier poll; None means read everything."""
        return None if self.newest is None else self.newest - timedelta(seconds=lookback)

    def created_gte(self, lookback: float) -> str | None:
        start = self.window_start(lookback)
        return None if start is None else query_moment(start)

    def advance(self, objects: Iterable[dict[str, Any]], lookback: float) -> tuple[list[Any], Watermark, int]:
        """The ids never seen (oldest first), the moved watermark, and how many objects had no readable ``created``.

        Objects older than the window are ignored even if the server sent them (it may not know
        ``created__gte``); the window then starts ``lookback`` before the newest ``created`` seen.
        """
        start = self.window_start(lookback)
        seen = dict(self.seen)
        fresh: list[tuple[datetime, int, Any]] = []
        unreadable = 0
        for position, item in enumerate(objects):
            created = parse_created(item.get("created"))
            if created is None:
                unreadable += 1
                continue
            key = str(item.get("id"))
            if (start is not None and created < start) or key in seen:
                continue
            seen[key] = created
            fresh.append((created, position, item.get("id")))
        fresh.sort(key=lambda entry: entry[:2])
        newest = max([self.newest, *(created for created, _, _ in fresh)], key=_moment_or_earliest)
        moved = Watermark(newest, seen).pruned(lookback)
        return [object_id for _, _, object_id in fresh], moved, unreadable

    def pruned(self, lookback: float) -> Watermark:
        """The same watermark without ids that fell out of the window (the next poll cannot return them)."""
        start = self.window_start(lookback)
        if start is None:
            return self
        return Watermark(self.newest, {key: created for key, created in self.seen.items() if created >= start})

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "newest": None if self.newest is None else self.newest.isoformat(),
            "seen": {key: created.isoformat() for key, created in self.seen.items()},
        }

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """The stored watermark, or None when there is none or it cannot be read (then: start from now)."""
        if not isinstance(value, dict) or value.get("version") != STATE_VERSION:
            return None
        newest, seen = value.get("newest"), value.get("seen")
        if not isinstance(seen, dict) or (newest is not None and parse_created(newest) is None):
            return None
        moments = {str(key): parse_created(created) for key, created in seen.items()}
        if any(moment is None for moment in moments.values()):
            return None
        return cls(parse_created(newest), {key: moment for key, moment in moments.items() if moment is not None})


def _moment_or_earliest(moment: datetime | None) -> datetime:
    return moment or datetime.min.replace(tzinfo=timezone.utc)


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
        return Watermark.from_json(value)

    async def save(self, watermark: Watermark) -> None:
        if self.available:
            await self._call("aset", "set", self.key, watermark.to_json())

    async def _call(self, async_name: str, name: str, *args: Any) -> Any:
        method = getattr(self.accessors, async_name, None)
        if method is not None:
            return await method(*args)
        return await asyncio.to_thread(getattr(self.accessors, name), *args)
