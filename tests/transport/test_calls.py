"""Rate limits waited out, not counted as failures; a task log that summarises instead of repeating."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from airflow_provider_piriod.exceptions import PiriodRateLimitError, PiriodServerError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from airflow_provider_piriod.transport import calls


@pytest.fixture
def warnings(caplog, capfd):
    """The WARNING lines logged so far (stdlib records and what Airflow's structlog printed)."""
    caplog.set_level(logging.INFO)

    def lines() -> list[str]:
        out, err = capfd.readouterr()
        printed = [line for line in (out + err).splitlines() if "[warning" in line]
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] + printed

    return lines


def progress_lines(caplog, capfd) -> list[str]:
    """The progress lines, from stdlib records (Airflow 2.11) or what Airflow 3's structlog printed."""
    out, err = capfd.readouterr()

    def progress(texts: list[str]) -> list[str]:
        return [re.search(r"Read \d.*?(?= \[airflow|$)", t).group(0) for t in texts if re.search(r"Read \d", t)]

    return progress([r.getMessage() for r in caplog.records]) or progress((out + err).splitlines())  # not both


def use_extras(monkeypatch, emulator, **extra):
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(emulator.connection, extra=extra)))


def test_a_burst_of_429s_does_not_spend_retries_and_is_reported_once(
    monkeypatch, piriod_emulator, fast_retries, warnings
):
    use_extras(monkeypatch, piriod_emulator, max_retries=3)
    piriod_emulator.add_fault("status", status=429, retry_after="0.01", times=80, path="/customers/*")
    ids = [c["id"] for c in piriod_emulator.customers()] * 3
    ids = ids[:200]
    got = PiriodHook().get_customers(ids, max_workers=16)
    assert [c.id for c in got] == ids
    assert sum(e["fault"] == "status" for e in piriod_emulator.requests()) == 80
    lines = warnings()
    assert len(lines) <= 10, lines
    assert sum("Piriod is rate-limiting customers (429)" in line for line in lines) == 1
    assert sum("rate limiting of customers is over: 80 requests were throttled" in line for line in lines) == 1


def test_throttling_that_outlasts_rate_limit_wait_fails_saying_how_long(monkeypatch, piriod_emulator, fast_retries):
    use_extras(monkeypatch, piriod_emulator, max_retries=0, rate_limit_wait=0.5)
    piriod_emulator.add_fault("status", status=429, retry_after="0.1", times=None)
    with pytest.raises(PiriodRateLimitError, match=r"still rate-limited after waiting 0\.\d s .*wait = 0\.5 s"):
        PiriodHook().count_customers()
    assert 3 <= len(piriod_emulator.requests()) <= 8


def test_429_without_retry_after_backs_off_and_still_succeeds(monkeypatch, piriod_emulator, fast_retries):
    use_extras(monkeypatch, piriod_emulator, max_retries=0)
    piriod_emulator.add_fault("status", status=429, times=6)
    assert PiriodHook().count_customers() == len(piriod_emulator.customers())


def test_server_errors_still_spend_max_retries(monkeypatch, piriod_emulator, fast_retries):
    use_extras(monkeypatch, piriod_emulator, max_retries=2)
    piriod_emulator.add_fault("status", status=503, times=None)
    with pytest.raises(PiriodServerError):
        PiriodHook().count_customers()
    assert len(piriod_emulator.requests()) == 3


def test_the_async_hook_waits_out_429s_too(monkeypatch, piriod_emulator, fast_retries):
    use_extras(monkeypatch, piriod_emulator, max_retries=0, rate_limit_wait=0.4)

    async def count():
        async with PiriodAsyncHook() as hook:
            return await hook.count_customers()

    piriod_emulator.add_fault("status", status=429, retry_after="0.01", times=5)
    assert asyncio.run(count()) == len(piriod_emulator.customers())
    piriod_emulator.add_fault("status", status=429, retry_after="0.1", times=None)
    with pytest.raises(PiriodRateLimitError, match=r"rate_limit_wait = 0\.4 s"):
        asyncio.run(count())


@pytest.mark.piriod_emulator(customers=300, latency_ms=5)
def test_long_reads_log_progress_with_pages_rate_and_time_to_go(monkeypatch, piriod_emulator, caplog, capfd):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(calls, "REPORT_EVERY", 0.0)
    total = len(piriod_emulator.customers())
    assert sum(1 for _ in PiriodHook().iter_customer_json(page_size=50)) == total
    progress = progress_lines(caplog, capfd)
    pages = -(-total // 50)
    assert len(progress) == pages
    assert re.fullmatch(rf"Read 50 of {total} customers \(1 of {pages} pages\) at \d+/s; about .+ to go", progress[0])
    assert progress[-1].startswith(f"Read {total} of {total} customers ({pages} of {pages} pages)")


def test_many_ids_log_progress_too(monkeypatch, piriod_emulator, caplog, capfd):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(calls, "REPORT_EVERY", 0.0)
    ids = [c["id"] for c in piriod_emulator.customers()[:20]]
    PiriodHook().get_customers(ids, max_workers=4)
    progress = progress_lines(caplog, capfd)
    assert any(line.startswith("Read 20 of 20 customers at ") for line in progress)  # threads log in any order


def test_rate_limit_wait_is_a_checked_connection_extra(monkeypatch, piriod_emulator):
    from airflow_provider_piriod.exceptions import PiriodConfigError

    use_extras(monkeypatch, piriod_emulator, rate_limit_wait=-1)
    with pytest.raises(PiriodConfigError, match="rate_limit_wait must be between 0 and 86400 seconds, got -1"):
        PiriodHook().count_customers()
    use_extras(monkeypatch, piriod_emulator, rate_limit_wait="120")
    assert PiriodHook().settings.rate_limit_wait == 120.0
    use_extras(monkeypatch, piriod_emulator)
    assert PiriodHook().settings.rate_limit_wait == 600.0
