"""Faults survived or refused through the operator and the sensor, never a partial result.

Each scenario here is a row of docs/reliability.md. "Recovers" faults hit the first requests and
must be retried until the task succeeds with the full, correct result; "fails" faults must end in
the documented typed error, with no return value and no file under the final output path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_piriod.compat import AirflowFailException
from airflow_provider_piriod.exceptions import (
    PiriodNetworkError,
    PiriodResponseError,
    PiriodServerError,
)
from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator
from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor
from airflow_provider_piriod.testing import PiriodEmulator

RECOVERS = {
    "429 burst with Retry-After": {"kind": "status", "status": 429, "retry_after": "0.1", "times": 3},
    "500 with an HTML body": {"kind": "status", "status": 500, "times": 2},
    "502 with an HTML body": {"kind": "status", "status": 502, "times": 2},
    "503 with an HTML body": {"kind": "status", "status": 503, "times": 2},
    "connection dropped mid-body": {"kind": "drop", "times": 2},
    "truncated JSON": {"kind": "truncated_json", "times": 2},
    "200 with a non-JSON body": {"kind": "invalid_json", "times": 2},
}

# scenario: (fault, connection extras, error, words the message must contain)
FAILS = {
    "body trickled forever": (
        {"kind": "slow_body", "chunk_delay": 0.05, "seconds": 20, "times": None},
        {"timeout": 0.4, "max_retries": 1},
        PiriodNetworkError,
        "deadline",
    ),
    "503 that outlasts the retries": (
        {"kind": "status", "status": 503, "times": None},
        {"max_retries": 2},
        PiriodServerError,
        "503 Service Unavailable",
    ),
    "200 with a JSON list": ({"kind": "non_object", "times": None}, {}, PiriodResponseError, "expected an object"),
    "3xx redirect": ({"kind": "redirect", "times": None}, {}, PiriodResponseError, "redirects are not followed"),
    "oversized body": (None, {"max_response_bytes": 4096}, PiriodResponseError, "exceeds the 4096-byte limit"),
}
LIST_FAILS = {
    "page without results": (
        {"kind": "missing_results", "query": "page=2"},
        {},
        PiriodResponseError,
        "without a 'results' list",
    ),
    # next links are followed page after page when max_workers=1 (with more, pages are fetched by number)
    "next link back to a page already read": (
        {"kind": "next_loop", "nth": 3},
        {"workers": 1},
        PiriodResponseError,
        "already read",
    ),
    "next link to another host": (
        {"kind": "next_host", "nth": 2},
        {"workers": 1},
        PiriodResponseError,
        "refusing to follow 'next'",
    ),
}


@pytest.fixture(autouse=True)
def _quick_backoff(fast_retries):
    """Retries in milliseconds (Retry-After values are still honoured as given)."""


def connect(monkeypatch, emulator, extras) -> int:
    """Point piriod_default at the emulator with ``extras``; returns the operator's max_workers to use."""
    extras = dict(extras)
    workers = extras.pop("workers", 8)
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(emulator.connection, extra=extras)))
    return workers


def by_id(records):
    return sorted(records, key=lambda r: r["id"])


def read_ndjson(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------- recovered


@pytest.mark.piriod_emulator(customers=150)
@pytest.mark.parametrize("scenario", RECOVERS)
def test_operator_list_to_file_recovers(piriod_emulator, tmp_path, scenario):
    piriod_emulator.add_fault(**RECOVERS[scenario])
    target = tmp_path / "customers.ndjson"
    result = PiriodCustomerOperator(task_id="t", filters={}, page_size=40, output_path=f"file://{target}").execute({})
    assert result["count"] == len(piriod_emulator.customers())
    assert by_id(read_ndjson(target)) == by_id(piriod_emulator.customers())


@pytest.mark.parametrize("scenario", RECOVERS)
def test_operator_ids_recover(piriod_emulator, scenario):
    records = piriod_emulator.customers()[:10]
    piriod_emulator.add_fault(**RECOVERS[scenario])
    result = PiriodCustomerOperator(task_id="t", customer_ids=[r["id"] for r in records], max_workers=4).execute({})
    assert result == records


@pytest.mark.parametrize("scenario", RECOVERS)
def test_sensor_recovers_within_one_poke(piriod_emulator, scenario):
    record = piriod_emulator.customers()[0]
    piriod_emulator.add_fault(**RECOVERS[scenario])
    outcome = PiriodCustomerSensor(task_id="s", customer_id=record["id"]).poke({})
    assert outcome.is_done and outcome.xcom_value == record


# ---------------------------------------------------------------------- refused


def _fault(emulator, spec):
    if spec is not None:
        emulator.add_fault(**spec)


@pytest.mark.parametrize("scenario", {**FAILS, **LIST_FAILS})
def test_operator_list_to_file_fails_cleanly(piriod_emulator, monkeypatch, tmp_path, scenario):
    spec, extras, error, words = {**FAILS, **LIST_FAILS}[scenario]
    workers = connect(monkeypatch, piriod_emulator, extras)
    _fault(piriod_emulator, spec)
    target = tmp_path / "out" / "customers.ndjson"
    with pytest.raises(error, match=words):
        PiriodCustomerOperator(
            task_id="t", filters={}, page_size=10, max_workers=workers, output_path=f"file://{target}"
        ).execute({})
    assert list((tmp_path / "out").iterdir()) == []  # no file under the final name, no partial leftovers


@pytest.mark.parametrize("scenario", {**FAILS, **LIST_FAILS})
def test_operator_list_to_xcom_fails_without_a_value(piriod_emulator, monkeypatch, scenario):
    spec, extras, error, words = {**FAILS, **LIST_FAILS}[scenario]
    workers = connect(monkeypatch, piriod_emulator, extras)
    _fault(piriod_emulator, spec)
    with pytest.raises(error, match=words):
        PiriodCustomerOperator(task_id="t", filters={}, page_size=10, max_workers=workers).execute({})


@pytest.mark.parametrize("scenario", FAILS)
def test_operator_ids_fail_cleanly(piriod_emulator, monkeypatch, tmp_path, scenario):
    spec, extras, error, words = FAILS[scenario]
    if scenario == "oversized body":
        extras = {"max_response_bytes": 1024}
        words = "exceeds the 1024-byte limit"
    connect(monkeypatch, piriod_emulator, extras)
    _fault(piriod_emulator, spec)
    ids = [r["id"] for r in piriod_emulator.customers()[:5]]
    with pytest.raises(error, match=words):
        PiriodCustomerOperator(task_id="t", customer_ids=ids, output_path=f"file://{tmp_path}/ids.ndjson").execute({})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scenario", ["200 with a JSON list", "3xx redirect"])
def test_sensor_fails_at_once_on_a_broken_answer(piriod_emulator, scenario):
    spec, _, _, words = FAILS[scenario]
    piriod_emulator.add_fault(**spec)
    with pytest.raises(AirflowFailException, match=words):
        PiriodCustomerSensor(task_id="s", customer_id=piriod_emulator.customers()[0]["id"]).poke({})


@pytest.mark.parametrize("scenario", ["body trickled forever", "503 that outlasts the retries"])
def test_sensor_treats_a_persisting_outage_as_not_yet(piriod_emulator, monkeypatch, scenario):
    spec, extras, _, _ = FAILS[scenario]
    connect(monkeypatch, piriod_emulator, extras)
    piriod_emulator.add_fault(**spec)
    assert PiriodCustomerSensor(task_id="s", customer_id=piriod_emulator.customers()[0]["id"]).poke({}).is_done is False


# ---------------------------------------------------------------------- the token stays home


@pytest.mark.parametrize("kind", ["next_host", "redirect"])
def test_the_authorization_header_never_reaches_another_host(piriod_emulator, kind):
    with PiriodEmulator(customers=3) as elsewhere:
        piriod_emulator.add_fault(kind, host=elsewhere.url.removeprefix("http://"), times=None)
        with pytest.raises(PiriodResponseError):
            PiriodCustomerOperator(task_id="t", filters={}, page_size=5, max_workers=1).execute({})
        assert elsewhere.requests() == []


# ---------------------------------------------------------------------- pages that shift


@pytest.mark.piriod_emulator(customers=60)
def test_customers_repeated_by_a_signup_mid_scan_are_written_once(piriod_emulator, tmp_path):
    originals = piriod_emulator.customers()
    piriod_emulator.create_customer(after_requests=2, name="Registro Durante Lectura SpA")  # lands before page 2
    target = tmp_path / "customers.ndjson"
    result = PiriodCustomerOperator(task_id="t", filters={}, page_size=10, output_path=f"file://{target}").execute({})
    written = read_ndjson(target)
    assert len({r["id"] for r in written}) == len(written) == result["count"]
    assert {r["id"] for r in written} == {r["id"] for r in originals}  # the newcomer comes with the next run
