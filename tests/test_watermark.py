"""The event trigger's watermark: late commits, equal timestamps, batches, skew, and what is stored."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_piriod.watermark import Watermark, WatermarkStore, batches, parse_created, query_moment

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
LOOKBACK = 300


def obj(object_id, seconds: float, shape: str = "zulu") -> dict:
    """An object created ``seconds`` after T0, its timestamp written in one of Piriod's shapes."""
    moment = T0 + timedelta(seconds=seconds)
    if shape == "zulu":
        created = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    elif shape == "offset":
        created = moment.astimezone(timezone(timedelta(hours=-4))).isoformat()
    else:
        created = moment.strftime("%Y-%m-%d %H:%M:%S")
    return {"id": object_id, "created": created}


def test_new_objects_are_announced_oldest_first_and_the_watermark_moves_to_the_newest():
    """Ids come out in ``created`` order whatever the page order; the newest ``created`` becomes the watermark."""
    start = Watermark(T0)
    ids, moved, unreadable, _ = start.advance([obj("b", 20), obj("a", 10), obj("c", 30)], LOOKBACK)
    assert ids == ["a", "b", "c"] and unreadable == 0
    assert moved.newest == T0 + timedelta(seconds=30)
    assert set(moved.seen) == {"a", "b", "c"}


def test_a_late_commit_inside_lookback_is_announced_once():
    """An object that appears after the watermark passed it, with an earlier ``created``, still counts once."""
    (after_first,) = [Watermark(T0).advance([obj("a", 100)], LOOKBACK)[1]]
    ids, after_late, _, _ = after_first.advance([obj("a", 100), obj("late", 40)], LOOKBACK)
    assert ids == ["late"]
    assert after_late.newest == T0 + timedelta(seconds=100)  # a late object never moves the watermark back
    assert after_late.advance([obj("a", 100), obj("late", 40)], LOOKBACK)[0] == []


def test_a_commit_later_than_lookback_is_outside_the_window():
    """``lookback`` bounds how late a commit can be: older objects are not announced even if sent."""
    watermark = Watermark(T0 + timedelta(seconds=1000))
    ids, _, _, _ = watermark.advance([obj("too_late", 1000 - LOOKBACK - 1), obj("in_time", 1000 - LOOKBACK)], LOOKBACK)
    assert ids == ["in_time"]


def test_equal_timestamps_at_the_boundary_are_told_apart_by_id():
    """Objects sharing the watermark's exact ``created`` are re-read (``__gte``); only unseen ids are new."""
    _, watermark, _, _ = Watermark(T0).advance([obj("first", 5)], LOOKBACK)
    ids, watermark, _, _ = watermark.advance([obj("first", 5), obj("twin", 5)], LOOKBACK)
    assert ids == ["twin"]
    assert watermark.advance([obj("first", 5), obj("twin", 5)], LOOKBACK)[0] == []


def test_history_from_a_server_ignoring_created_gte_is_never_announced():
    """A server that ignores ``created__gte`` sends everything; only the window is judged."""
    history = [obj(f"old{i}", -10_000 - i) for i in range(50)]
    ids, _, _, _ = Watermark(T0).advance([*history, obj("new", 1)], LOOKBACK)
    assert ids == ["new"]


def test_seen_ids_older_than_the_window_are_forgotten_so_the_state_stays_small():
    """Once the watermark passes an id's ``created`` by more than ``lookback``, the id is dropped."""
    _, watermark, _, _ = Watermark(T0).advance([obj("early", 1)], LOOKBACK)
    _, watermark, _, _ = watermark.advance([obj("early", 1), obj("much_later", 1 + LOOKBACK + 1)], LOOKBACK)
    assert set(watermark.seen) == {"much_later"}


def test_the_window_query_rounds_down_and_objects_before_the_window_start_are_ignored():
    """``created__gte`` has whole seconds (rounded down); objects between it and the exact start are not new."""
    watermark = Watermark(T0 + timedelta(seconds=LOOKBACK, microseconds=500_000))
    assert watermark.created_gte(LOOKBACK) == "2026-03-01T12:00:00Z"
    before_start = {"id": "x", "created": "2026-03-01T12:00:00.200000Z"}
    assert watermark.advance([before_start], LOOKBACK)[0] == []


def test_only_piriods_clock_counts_the_local_one_is_never_read():
    """Piriod 12 hours ahead of the triggerer: with Piriod's Date as ``now``, each object is announced once."""
    piriods = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    stamp = lambda seconds: (piriods + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    verdict = Watermark(piriods).advance([{"id": "a", "created": stamp(0)}], LOOKBACK, now=piriods)
    verdict = verdict.watermark.advance(
        [{"id": "a", "created": stamp(0)}, {"id": "b", "created": stamp(1)}],
        LOOKBACK,
        now=piriods + timedelta(seconds=2),
    )
    assert verdict.ids == ["b"] and verdict.watermark.newest == piriods + timedelta(seconds=1)
    assert verdict.watermark.created_gte(LOOKBACK) == stamp(1 - LOOKBACK)


def test_an_object_dated_years_ahead_is_not_announced_and_hides_nothing():
    """A typo'd ``created`` in 2099 is reported as ahead, never announced, and the watermark stays on time."""
    now = T0 + timedelta(seconds=100)
    typo = {"id": "typo", "created": "2099-01-01T00:00:00Z"}
    verdict = Watermark(T0).advance([typo, obj("a", 10)], LOOKBACK, now=now)
    assert verdict.ids == ["a"] and verdict.ahead == ["typo"]
    assert verdict.watermark.newest == T0 + timedelta(seconds=10) and "typo" not in verdict.watermark.seen
    assert verdict.watermark.advance([obj("a", 10), typo, obj("b", 20)], LOOKBACK, now=now).ids == ["b"]


def test_an_object_dated_a_little_ahead_is_announced_but_the_watermark_stops_at_piriods_now():
    """Stamped 50 minutes ahead (a naive local time): announced, and objects created after it still count."""
    now = T0 + timedelta(seconds=100)
    verdict = Watermark(T0).advance([obj("early_stamp", 100 + 3000)], LOOKBACK, now=now)
    assert verdict.ids == ["early_stamp"] and verdict.watermark.newest == now
    later = verdict.watermark.advance(
        [obj("early_stamp", 3100), obj("next", 130)], LOOKBACK, now=now + timedelta(seconds=60)
    )
    assert later.ids == ["next"]


def test_a_full_state_never_ignores_objects_after_the_newest():
    """Ids stamped ahead fill the stored budget first; what is left out stops at the newest, not at their dates."""
    now = T0 + timedelta(seconds=100)
    ahead = [obj(f"cus_ahead_{i:04d}", 100 + 1800 + i * 0.01) for i in range(2000)]
    watermark = Watermark(T0).advance(ahead, LOOKBACK, now=now).watermark
    restored = Watermark.from_json(watermark.to_json(budget=20_000))
    assert restored.ignore_through <= restored.newest == now
    assert restored.advance([obj("after_restart", 150)], LOOKBACK, now=now + timedelta(seconds=60)).ids == [
        "after_restart"
    ]


def test_timestamps_at_the_ends_of_the_calendar_never_crash():
    """Year 1 and year 9999 (with an offset that overflows) are judged or skipped, never an OverflowError."""
    ids, watermark, skipped, _ = Watermark(None).advance(
        [{"id": "first", "created": "0001-01-01T00:01:00Z"}, {"id": "last", "created": "9999-12-31T23:59:59-01:00"}],
        LOOKBACK,
    )
    assert ids == ["first"] and skipped == 1
    assert watermark.created_gte(LOOKBACK) == "0001-01-01T00:00:00Z"


def test_ids_that_are_no_piriod_ids_are_skipped_and_counted():
    """Only strings (up to 256 characters) and 64-bit whole numbers are ids; 7 and "7" are one object."""
    objects = [
        {"id": 7, "created": "2026-03-01T12:00:01Z"},
        {"id": "7", "created": "2026-03-01T12:00:01Z"},
        *(
            {"id": bad, "created": "2026-03-01T12:00:01Z"}
            for bad in (None, True, 7.0, {"x": 1}, "", "x" * 257, 10**4000)
        ),
    ]
    ids, _, skipped, _ = Watermark(T0).advance(objects, LOOKBACK)
    assert ids == [7] and skipped == 7


def test_the_three_timestamp_shapes_compare_as_instants():
    """``...Z``, ``...-04:00`` and the zone-less shape (UTC) are one clock."""
    ids, _, _, _ = Watermark(T0).advance([obj("z", 3), obj("o", 1, "offset"), obj("n", 2, "naive")], LOOKBACK)
    assert ids == ["o", "n", "z"]
    assert parse_created("2020-05-12 15:42:09") == datetime(2020, 5, 12, 15, 42, 9, tzinfo=timezone.utc)
    assert query_moment(parse_created("2020-07-01T20:36:04.301041-04:00")) == "2020-07-02T00:36:04Z"


def test_objects_without_a_readable_created_are_counted_not_announced():
    """No ``created``, a number, or text that is no timestamp: such objects cannot be placed in the window."""
    objects = [{"id": "a"}, {"id": "b", "created": 12}, {"id": "c", "created": "yesterday"}, obj("d", 1)]
    ids, _, unreadable, _ = Watermark(T0).advance(objects, LOOKBACK)
    assert ids == ["d"] and unreadable == 3


def test_before_anything_exists_every_object_is_new_and_integer_ids_keep_their_type():
    """An empty resource at the first start has no watermark: the first objects are all new."""
    empty = Watermark(None)
    assert empty.created_gte(LOOKBACK) is None
    ids, watermark, _, _ = empty.advance([obj(7, 1), obj(8, 2)], LOOKBACK)
    assert ids == [7, 8] and watermark.newest == T0 + timedelta(seconds=2)


@pytest.mark.parametrize(("count", "size", "sizes"), [(0, 3, []), (5, 2, [2, 2, 1]), (6, 3, [3, 3]), (1, 500, [1])])
def test_batches_split_ids_without_losing_or_repeating_any(count, size, sizes):
    """More ids than ``max_batch`` become several consecutive batches."""
    ids = list(range(count))
    chunks = list(batches(ids, size))
    assert [len(chunk) for chunk in chunks] == sizes
    assert [i for chunk in chunks for i in chunk] == ids


def test_a_state_too_big_for_the_store_keeps_the_newest_ids_and_ignores_the_older_ones():
    """Over the budget, the oldest ids are left out and objects up to them are ignored: none announced twice."""
    objects = [obj(f"cus_{i:05d}", i * 0.01) for i in range(3000)]
    _, watermark, _, _ = Watermark(T0).advance(objects, LOOKBACK)
    stored = watermark.to_json(budget=20_000)
    assert len(json.dumps(stored)) <= 20_000
    restored = Watermark.from_json(stored)
    assert restored.ignore_through is not None and len(restored.seen) < 3000
    ids, _, _, _ = restored.advance([*objects, obj("cus_new", 31)], LOOKBACK)
    assert ids == ["cus_new"]


def test_the_stored_json_round_trips_and_anything_unreadable_means_start_over():
    """What goes into the Asset State Store comes back equal; a foreign or damaged value is ignored."""
    _, watermark, _, _ = Watermark(T0).advance([obj("a", 1), obj(2, 2)], LOOKBACK)
    assert Watermark.from_json(watermark.to_json()) == watermark
    assert Watermark.from_json(Watermark(None).to_json()) == Watermark(None)
    for damaged in (
        None,
        "x",
        {},
        {"version": 99},
        {"version": 1, "seen": []},
        {"version": 1, "newest": "?", "seen": {}},
    ):
        assert Watermark.from_json(damaged) is None


class AsyncAccessor:
    """The accessor surface of Airflow 3.3.2+ (aget/aset)."""

    def __init__(self):
        self.data: dict = {}

    async def aget(self, key, default=None):
        return self.data.get(key, default)

    async def aset(self, key, value):
        self.data[key] = value


class BlockingAccessor:
    """Airflow 3.3.0/3.3.1: only blocking get/set, which must not run on the event loop's thread."""

    def __init__(self):
        self.data: dict = {}
        self.threads: set[str] = set()

    def get(self, key, default=None):
        import threading

        self.threads.add(threading.current_thread().name)
        return self.data.get(key, default)

    def set(self, key, value):
        import threading

        self.threads.add(threading.current_thread().name)
        self.data[key] = value


class SharedAccessor:
    """Several assets on one trigger: Airflow's shorthand accessor refuses to pick one."""

    async def aget(self, key, default=None):
        raise ValueError("Task has 2 concrete inlets and outlets")


def test_the_store_uses_async_accessors_or_runs_blocking_ones_in_a_thread():
    """Both accessor generations keep the same JSON; blocking calls never run on the loop's thread."""
    _, watermark, _, _ = Watermark(T0).advance([obj("a", 1)], LOOKBACK)
    for accessor in (AsyncAccessor(), BlockingAccessor()):
        store = WatermarkStore(accessor, "k")

        async def round_trip(store=store):
            assert await store.load() is None
            await store.save(watermark)
            return await store.load()

        assert asyncio.run(round_trip()) == watermark
        assert accessor.data == {"k": watermark.to_json()}
    assert "MainThread" not in accessor.threads


def test_without_a_store_or_with_an_ambiguous_one_nothing_is_kept_and_the_reason_is_known():
    """No store (Airflow < 3.3) or one shared by several assets: the trigger runs from "now" and can say why."""
    missing = WatermarkStore(None, "k")
    assert asyncio.run(missing.load()) is None and not missing.available
    assert "no Asset State Store" in missing.problem
    shared = WatermarkStore(SharedAccessor(), "k")
    assert asyncio.run(shared.load()) is None and not shared.available
    assert "distinct arguments" in shared.problem
