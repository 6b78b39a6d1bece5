"""Filters Piriod would answer silently (a misspelt key, a list without ``__in``) are warned about, once a call."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from airflow_provider_piriod.filter_checks import filter_problems, problems_message
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from airflow_provider_piriod.resources import get_resource


MARK = " filters: "


def filter_warnings(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> list[str]:
    """The filter warnings logged so far: Airflow 3 prints the hook's log lines, 2.11 hands them to logging."""
    out, err = capfd.readouterr()
    printed = [line for line in (out + err).splitlines() if MARK in line and "warning" in line.lower()]
    recorded = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and MARK in r.getMessage()]
    return printed or recorded


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture):
    caplog.set_level(logging.INFO)
    return lambda: filter_warnings(caplog, capfd)


def test_a_misspelt_filter_is_warned_about_and_still_sent(hook, piriod_emulator, warnings_seen):
    """``contry`` matches everything on Piriod: the warning names ``country``; the request goes out as asked."""
    assert hook.count_customers({"contry": "CL"}) == len(piriod_emulator.customers())
    (warning,) = warnings_seen()
    assert "'contry' is not a filter Piriod documents for customers (did you mean 'country'?)" in warning
    assert "warn_unknown_filters=false on connection 'piriod_default'" in warning
    assert "contry=CL" in piriod_emulator.requests()[-1]["query"]


def test_a_list_without_in_is_warned_about_with_the_in_form(hook, piriod_emulator, warnings_seen):
    """``{"status": [...]}`` matches nothing: the warning suggests ``status__in``."""
    assert hook.count_customers({"status": ["active", "pending"]}) == 0
    (warning,) = warnings_seen()
    assert "'status' is given a list" in warning and "write 'status__in'" in warning


@pytest.mark.piriod_emulator(customers=60)
def test_a_walk_over_many_pages_warns_once(hook, piriod_emulator, warnings_seen):
    """One call, a dozen pages (read four at a time too): one warning, not one per page."""
    everyone = len(piriod_emulator.customers())
    assert len(list(hook.iter_customer_json({"contry": "CL"}, page_size=5))) == everyone > 50
    assert len(list(hook.iter_customer_json({"contry": "CL"}, page_size=5, max_workers=4))) == everyone
    assert len(warnings_seen()) == 1  # the same hook does not repeat itself either


@pytest.mark.parametrize(
    ("resource", "filters"),
    [
        ("customers", {"country": "CL", "status__in": ["active", "pending"], "created__gte": "2025-01-01"}),
        ("customers", {"metadata__campaign": "spring", "ordering": "-created", "search": "agricola"}),
        ("contacts", {"customer__in": ["cus_1", "cus_2"]}),  # the __in form of a documented key
        ("invoices", {"date__gte": "2025-01-01", "customer": "cus_1"}),
        ("addons", {"anything": "goes"}),  # no documented filters to compare with
    ],
)
def test_documented_filters_pass_silently(resource, filters):
    """Documented keys, their ``__in`` forms and ``metadata__<key>`` raise nothing to warn about."""
    assert filter_problems(get_resource(resource), filters) == []


def test_the_connection_can_silence_the_warnings(piriod_emulator, monkeypatch, warnings_seen):
    """``warn_unknown_filters: false`` on the connection: the filter is sent and nothing is logged."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT",
        json.dumps({**piriod_emulator.connection, "extra": {"warn_unknown_filters": False}}),
    )
    PiriodHook().count_customers({"contry": "CL"})
    assert warnings_seen() == []
    assert "contry=CL" in piriod_emulator.requests()[-1]["query"]


def test_the_async_hook_warns_too(piriod_emulator, warnings_seen):
    """Triggers read filters through the async hook: the same warning, once per call."""

    async def read() -> int:
        async with PiriodAsyncHook() as hook:
            items = [item async for item in hook.iter_object_json("customers", {"contry": "CL"}, page_size=50)]
            return len(items) + 0 * await hook.count_objects("customers", {"contry": "CL"})

    assert asyncio.run(read()) == len(piriod_emulator.customers())
    (warning,) = warnings_seen()
    assert "did you mean 'country'?" in warning


@pytest.mark.parametrize("key", ["metadata__" + "k" * 100_000, "x" * 100_000])
def test_a_huge_key_is_shortened_in_every_sentence(key):
    """A 100 kB key given a list: the warning stays a readable line, whichever sentences it holds."""
    spec = get_resource("customers")
    message = problems_message(spec, filter_problems(spec, {key: ["a", "b"]}), "piriod_default")
    assert "is given a list" in message
    assert len(message) < 1500
