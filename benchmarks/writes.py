"""
Scenario W of ``make bench``: an upsert of N customers (half new, a quarter changed, a quarter equal).

PiriodUpsertOperator at 16 workers beside a plain ``requests`` loop doing the same work (list every
customer, then POST the new ones and PATCH the changed ones, one after another, as a ``@task`` written
by hand does). Floor: the requests the work needs (the list pages, the creates, the updates) x latency
/ workers. Each run gets a fresh emulator (in its own process, with the latency injected) holding the
same N/2 customers, so every run has the same work to do.

    .venv/bin/python benchmarks/run.py --only W [--n 1000] [--latency-ms 20]
"""

from __future__ import annotations

import gc
import logging
import math
import os
import statistics
import time
from typing import Any

import requests

from airflow_provider_piriod.testing import PiriodEmulator

WORKERS = 16
PAGE = 100
ROUNDS = 3


def records_for(n: int) -> list[dict[str, Any]]:
    """N records: the first half Piriod has (every other one with a new email), the second half new."""
    records = []
    for i in range(n):
        email = f"changed{i}@example.cl" if i < n // 2 and i % 2 == 0 else f"c{i}@example.cl"
        records.append({"tax_id": f"W-{i:06d}", "name": f"Cliente {i}", "email": email, "country": "CL"})
    return records


def seeded(n: int, latency: float) -> PiriodEmulator:
    """A fresh emulator holding the first half of the records as they were before the change."""
    emulator = PiriodEmulator(customers=1, latency_ms=latency * 1000, in_process=False).start()
    for i in range(n // 2):
        emulator.create("customers", tax_id=f"W-{i:06d}", name=f"Cliente {i}", email=f"c{i}@example.cl", country="CL")
    return emulator


def with_operator(emulator: PiriodEmulator, records: list[dict[str, Any]]) -> dict[str, Any]:
    from airflow_provider_piriod.operators.piriod import PiriodUpsertOperator

    os.environ.update(emulator.connection_env())
    operator = PiriodUpsertOperator(
        task_id="bench", resource="customers", records=records, match_on="tax_id", max_workers=WORKERS
    )
    return operator.execute({})


def with_requests_loop(emulator: PiriodEmulator, records: list[dict[str, Any]]) -> dict[str, int]:
    """What a hand-written task does: page through the customers, then write one record after another."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace})
    existing: dict[str, dict[str, Any]] = {}
    url: str | None = f"{emulator.url}/customers/?page_size={PAGE}"
    while url:
        page = session.get(url, timeout=30).json()
        existing.update({c["tax_id"]: c for c in page["results"] if c.get("tax_id")})
        url = page.get("next")
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for record in records:
        current = existing.get(record["tax_id"])
        if current is None:
            session.post(f"{emulator.url}/customers/", json=record, timeout=30).raise_for_status()
            counts["created"] += 1
        elif current.get("email") != record["email"]:
            patch = {"email": record["email"]}
            session.patch(f"{emulator.url}/customers/{current['id']}/", json=patch, timeout=30).raise_for_status()
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    return counts


def one_run(n: int, latency: float, how) -> tuple[float, int, dict[str, Any]]:
    records = records_for(n)
    with seeded(n, latency) as emulator:
        before = len(emulator.requests())  # control requests are not logged; this is 0 unless that changes
        gc.collect()
        started = time.perf_counter()
        report = how(emulator, records)
        wall = time.perf_counter() - started
        return wall, len(emulator.requests()) - before, report


def section_w(n: int, latency: float) -> None:
    logging.getLogger("airflow").setLevel(logging.WARNING)
    live = n // 2 + 1  # the seeded half and the emulator's own customer
    pages = math.ceil(live / PAGE)
    needed = pages + n // 2 + n // 4  # list pages, creates, updates
    floor = needed * latency / WORKERS
    print(
        f"\nW. upsert of {n} customers ({n // 2} new, {n // 4} changed), {latency * 1000:g} ms latency, "
        f"{WORKERS} workers; floor = {needed} requests x latency / {WORKERS} (median of {ROUNDS})"
    )
    print(f"  {'method':<58} {'wall s':>8} {'requests':>9} {'floor s':>8} {'ratio':>7}")
    one_run(20, latency, with_operator)  # warm-up: the operator's modules are imported here, not in a timed run
    runs = [one_run(n, latency, with_operator) for _ in range(ROUNDS)]
    wall, count, report = sorted(runs, key=lambda r: r[0])[ROUNDS // 2]
    assert (report["created"], report["updated"]) == (n // 2, n // 4), report
    print(
        f"  {f'PiriodUpsertOperator max_workers={WORKERS}':<58} {wall:8.2f} {count:>9} {floor:8.2f} {wall / floor:7.2f}"
    )
    spread = statistics.pstdev(r[0] for r in runs)
    print(f"  {'  (spread of the ' + str(ROUNDS) + ' runs, s)':<58} {spread:8.2f}")
    wall, count, report = one_run(n, latency, with_requests_loop)
    assert (report["created"], report["updated"]) == (n // 2, n // 4), report
    label = "requests loop, one write after another (one run)"
    print(f"  {label:<58} {wall:8.2f} {count:>9} {floor:8.2f} {wall / floor:7.2f}")
