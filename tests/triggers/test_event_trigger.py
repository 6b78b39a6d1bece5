"""PiriodEventTrigger against the emulator: new objects only, each once, across restarts, through failures."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_piriod.compat import airflow_v3
from airflow_provider_piriod.exceptions import PiriodError, PiriodInputError
from airflow_provider_piriod.triggers.piriod import PiriodEventTrigger
from airflow_provider_piriod.watermark import Watermark, parse_created
from tests.hostile import logs_fixture
from tests.test_watermark import AsyncAccessor, BlockingAccessor

POLL = 0.05


def make(store=None, **kwargs) -> PiriodEventTrigger:
    """A trigger polling every 0.05 s (users cannot go below 1 s) and storing its watermark at once."""
    kwargs.setdefault("resource", "customers")
    trigger = PiriodEventTrigger(**kwargs)
    trigger.poll_interval, trigger.event_sync_grace = POLL, POLL
    trigger.asset_state_store = store  # what the triggerer injects for a watcher on Airflow 3.3+
    return trigger


class Running:
    """One trigger's ``run()`` driven from a test: wait for it to be watching, take events, stop it."""

    def __init__(self, trigger: PiriodEventTrigger, emulator):
        self.trigger, self.emulator = trigger, emulator
        self.events = trigger.run()

    async def watching(self) -> None:
        """Until the trigger took its starting point: the first window read after the newest probe."""
        self._next = asyncio.ensure_future(self.events.__anext__())
        for _ in range(400):
            if any("ordering=created" in r["query"] for r in self.emulator.requests()):
                return
            await asyncio.sleep(0.025)
        raise AssertionError("the trigger never read its first window")

    async def take(self, timeout: float = 10) -> dict:
        event = await asyncio.wait_for(self._next, timeout)
        self._next = asyncio.ensure_future(self.events.__anext__())
        return event.payload

    async def quiet(self, seconds: float = 0.5) -> None:
        """No event for a while (several polls)."""
        done, _ = await asyncio.wait({self._next}, timeout=seconds)
        assert not done, self._next.result().payload

    async def stop(self) -> None:
        self._next.cancel()
        await asyncio.gather(self._next, return_exceptions=True)
        await self.events.aclose()


@pytest.fixture
def logs(caplog, capfd):
    """``logs()``: everything logged or printed so far (stdlib records, and what handlers or structlog wrote)."""
    return logs_fixture(caplog, capfd)


def create(emulator, count: int, resource: str = "customers", **fields) -> list:
    """``count`` new objects, all at once for the trigger: a read that arrives meanwhile waits (the emulator's
    latency) until every one exists. Blocking the test's event loop does not pause the trigger's reads, which
    run in threads of their own, so without the wait a read could land between two creations."""
    emulator.set_latency(500)
    try:
        return [emulator.create(resource, dict(fields))["id"] for _ in range(count)]
    finally:
        emulator.set_latency(0)


def test_serialize_is_configuration_only_and_rebuilds_the_same_trigger():
    """Deterministic JSON kwargs (two DAG parses give one trigger); filters as the query strings they become."""
    trigger = PiriodEventTrigger(resource="payments", filters={"status": ["succeeded"]}, test_mode=True)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_piriod.triggers.watcher.PiriodEventTrigger"
    assert kwargs == {
        "resource": "payments",
        "filters": {"status": "succeeded"},
        "poll_interval": 60.0,
        "lookback": 300.0,
        "max_batch": 500,
        "piriod_conn_id": "piriod_default",
        "test_mode": True,
    }
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    if airflow_v3():
        from airflow.triggers.base import BaseEventTrigger

        again = PiriodEventTrigger(resource="payments", filters={"status": ["succeeded"]}, test_mode=True)
        assert BaseEventTrigger.hash(*trigger.serialize()) == BaseEventTrigger.hash(*again.serialize())


@pytest.mark.skipif(not airflow_v3(), reason="AssetWatcher is Airflow 3")
def test_an_asset_watcher_accepts_it():
    """AssetWatcher refuses triggers that are not BaseEventTrigger; this one is."""
    from airflow.sdk import Asset, AssetWatcher

    watcher = AssetWatcher(name="new_customers", trigger=PiriodEventTrigger(resource="customers"))
    assert Asset(name="piriod_new_customers", watchers=[watcher]).watchers == [watcher]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resource": "customer"}, "customer"),
        ({"resource": "customers", "filters": {"created__gte": "2026-01-01"}}, "created__gte"),
        ({"resource": "customers", "filters": {"ordering": "-created"}}, "ordering"),
        ({"resource": "customers", "filters": {"page": 2}}, "page"),
        ({"resource": "customers", "poll_interval": 0}, "poll_interval"),
        ({"resource": "customers", "poll_interval": 0.5}, "poll_interval"),
        ({"resource": "customers", "lookback": 1e12}, "lookback"),
        ({"resource": "customers", "test_mode": "maybe"}, "test_mode"),
        ({"resource": "customers", "piriod_conn_id": ""}, "piriod_conn_id"),
        ({"resource": "customers", "poll_interval": float("nan")}, "poll_interval"),
        ({"resource": "customers", "lookback": -1}, "lookback"),
        ({"resource": "customers", "max_batch": 0}, "max_batch"),
        ({"resource": "customers", "max_batch": True}, "max_batch"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs, message):
    """A typed error naming the argument, before any request."""
    with pytest.raises(PiriodInputError, match=message):
        PiriodEventTrigger(**kwargs)


@pytest.mark.piriod_emulator(customers=120)
def test_only_customers_created_after_it_started_are_announced_each_once(piriod_emulator):
    """History is never replayed; new signups arrive in one event, oldest first; later polls stay quiet."""
    store = AsyncAccessor()

    async def scenario():
        running = Running(make(store), piriod_emulator)
        await running.watching()
        await running.quiet()
        ids = create(piriod_emulator, 3)
        assert await running.take() == {"resource": "customers", "ids": ids, "count": 3}
        await running.quiet()
        await running.stop()

    asyncio.run(scenario())
    probes = [r for r in piriod_emulator.requests() if "ordering=-created" in r["query"]]
    assert len(probes) == 1 and "page_size=1" in probes[0]["query"]  # one small request finds Piriod's "now"


@pytest.mark.piriod_emulator(customers=5)
def test_more_new_objects_than_max_batch_come_as_several_events_of_one_poll(piriod_emulator):
    """Seven new payments with max_batch=3: events of 3, 3 and 1 ids, together each id once."""

    async def scenario():
        running = Running(make(AsyncAccessor(), resource="payments", max_batch=3), piriod_emulator)
        await running.watching()
        ids = create(piriod_emulator, 7, "payments")
        payloads = [await running.take() for _ in range(3)]
        await running.quiet()
        await running.stop()
        return ids, payloads

    ids, payloads = asyncio.run(scenario())
    assert [p["count"] for p in payloads] == [3, 3, 1]
    announced = [i for p in payloads for i in p["ids"]]
    assert sorted(announced) == sorted(ids)  # payments carry whole-second timestamps: ties come in id order


@pytest.mark.piriod_emulator(customers=5)
def test_filters_pick_which_new_objects_count(piriod_emulator):
    """Only succeeded payments are announced; the query carries the filter, created__gte and ordering."""

    async def scenario():
        running = Running(make(AsyncAccessor(), resource="payments", filters={"status": "succeeded"}), piriod_emulator)
        await running.watching()
        create(piriod_emulator, 2, "payments", status="failed")
        wanted = create(piriod_emulator, 1, "payments", status="succeeded")
        assert (await running.take())["ids"] == wanted
        await running.quiet()
        await running.stop()

    asyncio.run(scenario())
    windows = [r["query"] for r in piriod_emulator.requests() if "ordering=created" in r["query"]]
    assert all("status=succeeded" in q and "created__gte=" in q for q in windows)


@pytest.mark.piriod_emulator(customers=30)
def test_a_late_commit_inside_lookback_is_announced(piriod_emulator):
    """A customer that shows up with a ``created`` a minute before the newest one is still new."""

    async def scenario():
        running = Running(make(AsyncAccessor(), lookback=300), piriod_emulator)
        await running.watching()
        newest = max(parse_created(c["created"]) for c in piriod_emulator.records("customers"))
        late = (newest - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        too_late = (newest - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        outside = create(piriod_emulator, 1, created=too_late)
        inside = create(piriod_emulator, 1, created=late)
        payload = await running.take()
        await running.quiet()
        await running.stop()
        return payload, inside, outside

    payload, inside, outside = asyncio.run(scenario())
    assert payload["ids"] == inside and outside[0] not in payload["ids"]


@pytest.mark.piriod_emulator(customers=10)
@pytest.mark.parametrize("accessor", [AsyncAccessor, BlockingAccessor], ids=["airflow-3.3.2", "airflow-3.3.0"])
def test_a_restarted_trigger_announces_exactly_what_was_created_while_it_was_stopped(piriod_emulator, accessor):
    """Stop, create customers, start again with the same store: the missed ones arrive, none twice."""
    store = accessor()

    async def scenario():
        first = Running(make(store), piriod_emulator)
        await first.watching()
        before = create(piriod_emulator, 2)
        assert (await first.take())["ids"] == before
        await first.quiet(0.3)  # the watermark is stored after the event was taken
        await first.stop()
        missed = create(piriod_emulator, 3)
        second = Running(make(store), piriod_emulator)
        second._next = asyncio.ensure_future(second.events.__anext__())
        payload = await second.take()
        await second.quiet()
        await second.stop()
        return missed, payload

    missed, payload = asyncio.run(scenario())
    assert payload["ids"] == missed
    assert sum("ordering=-created" in r["query"] for r in piriod_emulator.requests()) == 1  # resumed, no new baseline


@pytest.mark.piriod_emulator(customers=10)
def test_without_a_store_it_starts_from_now_each_time_and_says_so(piriod_emulator, logs):
    """Airflow before 3.3: objects created while stopped are not announced, and the log explains why."""

    async def scenario():
        first = Running(make(None), piriod_emulator)
        await first.watching()
        await first.stop()
        create(piriod_emulator, 2)
        second = Running(make(None), piriod_emulator)
        await second.watching()
        await second.quiet()
        fresh = create(piriod_emulator, 1)
        assert (await second.take())["ids"] == fresh
        await second.stop()

    asyncio.run(scenario())
    assert "no Asset State Store: objects created while the triggerer is stopped will not be announced" in logs()


@pytest.mark.piriod_emulator(customers=10)
def test_failed_polls_are_logged_and_retried_then_it_raises_with_the_reason(piriod_emulator, logs, monkeypatch):
    """Two 503 polls are survived (and the objects behind them still arrive); a third failure in a row ends it."""
    for name, value in piriod_emulator.connection_env(max_retries=0).items():
        monkeypatch.setenv(name, value)
    trigger = make(AsyncAccessor())
    trigger.max_consecutive_failures = 3

    async def scenario():
        running = Running(trigger, piriod_emulator)
        await running.watching()
        piriod_emulator.add_fault("status", path="/customers/", status=503, times=2)
        ids = create(piriod_emulator, 1)
        assert (await running.take())["ids"] == ids
        piriod_emulator.add_fault("status", path="/customers/", status=503, times=None)
        with pytest.raises(PiriodError, match=r"3 polls of Piriod customers failed in a row; the last: .*503"):
            await running.take()

    asyncio.run(scenario())
    text = logs()
    failures = [line for line in text.splitlines() if "Polling Piriod customers failed" in line]
    assert all("warning" in line.lower() for line in failures)
    # two failures before the event, two before giving up; a record may reach the capture and a stream both
    counted = [re.search(r"\((\d) of 3 failures", line).group(1) for line in failures]
    assert counted in (["1", "2", "1", "2"], ["1", "2", "1", "2"] * 2)
    assert piriod_emulator.token not in text


def test_a_missing_connection_is_retried_like_a_failed_poll_not_a_restart_loop(logs):
    """The connection lookup counts as a failure: logged, waited for, then raised with the reason."""
    trigger = make(AsyncAccessor(), piriod_conn_id="piriod_missing")
    trigger.max_consecutive_failures = 2

    async def scenario():
        with pytest.raises(
            PiriodError, match=r"2 polls of Piriod customers failed in a row; the last: .*piriod_missing"
        ):
            async for _ in trigger.run():
                pass

    asyncio.run(scenario())
    assert "(1 of 2 failures before giving up)" in logs()


@pytest.mark.piriod_emulator(customers=10)
def test_the_watermark_is_stored_only_after_airflow_had_time_to_keep_the_events(piriod_emulator):
    """Stored ``event_sync_grace`` seconds after the event: a crash before that repeats the batch, never loses it."""
    store = AsyncAccessor()
    trigger = make(store)
    trigger.event_sync_grace = 1.0

    async def scenario():
        running = Running(trigger, piriod_emulator)
        await running.watching()
        while not store.data:  # the starting point is stored just after the first window read
            await asyncio.sleep(0.01)
        baseline = dict(store.data)
        ids = create(piriod_emulator, 1)
        assert (await running.take())["ids"] == ids
        assert store.data == baseline  # not yet: Airflow may still hold the event in memory
        await running.quiet(1.5)
        assert store.data != baseline and ids[0] in next(iter(store.data.values()))["seen"]
        await running.stop()

    asyncio.run(scenario())


def test_state_keys_follow_the_configuration_not_the_order_it_was_written_in():
    """Filter order does not matter; values with separators in them cannot make two watchers share a key."""
    one = PiriodEventTrigger(resource="customers", filters={"email": "a@x.io", "status": "active"})
    same = PiriodEventTrigger(resource="customers", filters={"status": "active", "email": "a@x.io"})
    tricky = PiriodEventTrigger(resource="customers", filters={"email": "a@x.io,status=active"})
    assert one.state_key == same.state_key != tricky.state_key
    assert one.serialize() == same.serialize()
    assert one.state_key != PiriodEventTrigger(resource="customers", filters=one.filters, test_mode=True).state_key


@pytest.mark.piriod_emulator(customers=10)
def test_an_unreadable_stored_watermark_is_replaced_and_the_log_says_so(piriod_emulator, logs):
    """A damaged or foreign value under the key: start from Piriod's newest object again, with a warning."""
    store = AsyncAccessor()
    trigger = make(store)
    store.data[trigger.state_key] = {"version": 1, "newest": "not a time", "seen": {}}

    async def scenario():
        running = Running(trigger, piriod_emulator)
        await running.watching()
        await running.quiet(0.3)
        await running.stop()

    asyncio.run(scenario())
    assert "The stored watermark could not be read" in logs()
    assert Watermark.from_json(store.data[trigger.state_key]) is not None


@pytest.mark.piriod_emulator(customers=10)
def test_objects_dated_hours_after_piriods_clock_are_named_once_and_hide_nothing(piriod_emulator, logs):
    """Piriod's Date header is the clock: a customer stamped two hours ahead is not announced (one warning
    names it), and the customers created after it still arrive."""

    async def scenario():
        running = Running(make(AsyncAccessor()), piriod_emulator)
        await running.watching()
        ahead = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        typo = create(piriod_emulator, 1, created=ahead)
        await running.quiet(0.5)
        real = create(piriod_emulator, 1)
        assert (await running.take())["ids"] == real
        await running.stop()
        return typo

    typo = asyncio.run(scenario())
    named = [line for line in logs().splitlines() if "dated more than an hour after Piriod's clock" in line]
    # one warning (a record may reach both the log capture and a stream), naming the customer
    assert len({line[line.index("Not announcing") :] for line in named}) == 1 and typo[0] in named[0]


@pytest.mark.piriod_emulator(customers=20)
def test_a_newest_object_without_created_makes_the_first_start_read_everything_as_history(piriod_emulator, logs):
    """The probe's object has no ``created``: the start reads the whole list once, announces none of it."""
    create(piriod_emulator, 1, created=None)

    async def scenario():
        running = Running(make(AsyncAccessor()), piriod_emulator)
        await running.watching()
        await running.quiet(0.5)
        fresh = create(piriod_emulator, 1)
        assert (await running.take())["ids"] == fresh
        await running.stop()

    asyncio.run(scenario())
    assert "has no readable 'created' timestamp: reading them all once" in logs()
    windows = [r["query"] for r in piriod_emulator.requests() if "ordering=created" in r["query"]]
    assert "created__gte" not in windows[0] and all("created__gte" in q for q in windows[1:])
    assert "ordering=created%2Cid" in windows[0]  # ties in created keep a stable page order
