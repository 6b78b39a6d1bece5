"""Every successful read task logs one INFO line: what it read, pages, requests, time and connection."""

from __future__ import annotations

import logging
import re

import pytest

from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator, PiriodReadOperator

SUMMARY = re.compile(r"Read \d+ Piriod .* through connection '[^']+'.*")


@pytest.fixture
def summaries(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture):
    """The summary lines logged so far (Airflow 3 prints task-side log lines; 2.11 hands them to logging)."""
    caplog.set_level(logging.INFO)

    def found() -> list[str]:
        out, err = capfd.readouterr()
        printed = [m.group(0) for m in map(SUMMARY.search, (out + err).splitlines()) if m]
        recorded = [r.getMessage() for r in caplog.records if SUMMARY.search(r.getMessage())]
        return [line.split(" [airflow.task")[0] for line in printed] or recorded

    return found


def test_one_customer(piriod_emulator, summaries):
    """``customer_id`` mode: one object, one request."""
    record = piriod_emulator.customers()[0]
    PiriodCustomerOperator(task_id="one", customer_id=record["id"]).execute({})
    (line,) = summaries()
    assert re.fullmatch(
        r"Read 1 Piriod customer \(customer_id\) with 1 request in \d+\.\d\d s through connection 'piriod_default'",
        line,
    )


@pytest.mark.piriod_emulator(customers=30)
def test_filters_name_the_pages_and_requests(piriod_emulator, summaries):
    """``filters`` mode: the count, the pages read and the requests made (a retried page counts twice)."""
    piriod_emulator.add_fault("status", status=503, nth=2)
    everyone = len(piriod_emulator.customers())
    PiriodCustomerOperator(task_id="all", filters={}, page_size=10, max_workers=1).execute({})
    (line,) = summaries()
    pages = -(-everyone // 10)
    assert f"Read {everyone} Piriod customers (filters, {pages} pages) with {pages + 1} requests (1 retried)" in line


def test_ids_and_a_file(piriod_emulator, summaries, tmp_path):
    """``object_ids`` with ``output_path``: how many of those asked were read, and where they were written."""
    ids = [r["id"] for r in piriod_emulator.customers()[:3]] + ["cus_missing"]
    target = tmp_path / "customers.ndjson"
    PiriodReadOperator(
        task_id="some",
        resource="customers",
        object_ids=ids,
        ignore_missing=True,
        output_path=f"file://{target}",
        piriod_conn_id="piriod_default",
    ).execute({})
    (line,) = summaries()
    assert line.startswith("Read 3 Piriod customers (object_ids, 4 asked) with 4 requests in ")
    assert line.endswith(f"through connection 'piriod_default'; wrote them to file://{target}")
