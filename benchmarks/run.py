"""
``make bench``: the provider against the generic routes, side by side, in one run.

The emulator runs in its own process with injected latency, so the client is measured, not the
server. Every figure is a ratio to what the network allows (the floor), taken in this same run;
runs marked "median of 3" repeat the measurement and keep the median.

    A. N customers by id: PiriodHook.get_customers at 1/8/16/32 workers, a requests.get loop,
       an HttpHook loop.                                     floor: ceil(N/C) x latency
    B. every customer through the list endpoint (page_size 100): following next, parallel pages,
       HttpOperator with pagination_function.                floor: pages (or 1 + ceil((P-1)/C)) x latency
    C. streaming 10k and 100k customers to output_path at 0 ms: peak RSS of the task process.
    D. DAG parse cost: 50 PiriodCustomerOperator tasks vs 50 EmptyOperator tasks.
    E. a rate-limited Piriod (token bucket, 429 + Retry-After): N ids with 32 workers vs N/R.

    .venv/bin/python benchmarks/run.py [--n 1000] [--latency-ms 20] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="piriod-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import requests  # noqa: E402

from airflow_provider_piriod.testing import PiriodEmulator  # noqa: E402

LIVE_SHARE = 0.9  # the emulator makes about 10 % of its customers test-mode records


def generated_for(live: int) -> int:
    """How many customers to generate so that about ``live`` of them are live records."""
    return math.ceil(live / LIVE_SHARE)


class Table:
    """Rows of (label, wall seconds, requests, floor seconds) printed with the ratio to the floor."""

    def __init__(self, title: str) -> None:
        print(f"\n{title}")
        print(f"  {'method':<58} {'wall s':>8} {'requests':>9} {'floor s':>8} {'ratio':>7}")

    @staticmethod
    def row(label: str, wall: float, count: int | str, floor: float | None) -> None:
        ratio = f"{wall / floor:7.2f}" if floor else "      -"
        floor_text = f"{floor:8.2f}" if floor else "       -"
        print(f"  {label:<58} {wall:8.2f} {count!s:>9} {floor_text} {ratio}", flush=True)


def timed(emulator: PiriodEmulator, action) -> tuple[float, int]:
    emulator.reset()
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    return wall, len(emulator.requests())


def median_of_3(emulator: PiriodEmulator, action) -> tuple[float, int]:
    runs = sorted(timed(emulator, action) for _ in range(3))
    return runs[1]


def use(emulator: PiriodEmulator) -> None:
    os.environ.update(emulator.connection_env())
    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({
        "conn_type": "http", "host": emulator.url,
        "extra": {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace},
    })


def section_a(n: int, latency: float) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_piriod.hooks.piriod import PiriodHook

    with PiriodEmulator(customers=generated_for(n) + 50, latency_ms=latency * 1000, in_process=False) as emulator:
        use(emulator)
        ids = [c["id"] for c in emulator.customers()][:n]
        table = Table(f"A. {n} customers by id, {latency * 1000:g} ms latency")
        for workers in (1, 8, 16, 32):
            hook = PiriodHook()
            run = lambda: hook.get_customers(ids, max_workers=workers)  # noqa: E731
            wall, count = median_of_3(emulator, run) if workers > 1 else timed(emulator, run)
            note = " (median of 3)" if workers > 1 else ""
            table.row(f"PiriodHook.get_customers max_workers={workers}{note}", wall,
                      count, math.ceil(n / workers) * latency)
        headers = {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
        wall, count = timed(emulator, lambda: [
            requests.get(f"{emulator.url}/customers/{i}/", headers=headers, timeout=30).json() for i in ids])
        table.row("requests.get loop", wall, count, n * latency)
        http = HttpHook(method="GET", http_conn_id="bench_http")
        wall, count = timed(emulator, lambda: [http.run(f"/customers/{i}/").json() for i in ids])
        table.row("HttpHook.run loop (providers-http)", wall, count, n * latency)


def section_b(n: int, latency: float) -> None:
    from airflow.providers.http.operators.http import HttpOperator

    from airflow_provider_piriod.hooks.piriod import PiriodHook

    with PiriodEmulator(customers=generated_for(n), latency_ms=latency * 1000, in_process=False) as emulator:
        use(emulator)
        live = len(emulator.customers())
        pages = math.ceil(live / 100)
        table = Table(f"B. all {live} customers through the list endpoint (page_size 100, {pages} pages)")
        hook = PiriodHook()
        wall, count = timed(emulator, lambda: list(hook.iter_customer_json(page_size=100)))
        table.row("PiriodHook following next", wall, count, pages * latency)
        for workers in (4, 8, 16):
            wall, count = median_of_3(
                emulator, lambda: list(hook.iter_customer_json(page_size=100, max_workers=workers)))
            table.row(f"PiriodHook parallel pages max_workers={workers} (median of 3)", wall, count,
                      (1 + math.ceil((pages - 1) / workers)) * latency)

        def next_page(response):
            following = response.json().get("next")
            return {"endpoint": following.removeprefix(emulator.url), "data": {}} if following else None

        operator = HttpOperator(task_id="pull", http_conn_id="bench_http", method="GET", endpoint="/customers/",
                                data={"page_size": 100}, pagination_function=next_page)
        wall, count = timed(emulator, lambda: operator.execute({}))
        table.row("HttpOperator with pagination_function", wall, count, pages * latency)


STREAM_CHILD = textwrap.dedent("""
    import json, os, resource, sys, time
    from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator
    started = time.perf_counter()
    result = PiriodCustomerOperator(task_id="s", filters={}, output_path=sys.argv[1]).execute({})
    print(json.dumps({"count": result["count"], "wall": time.perf_counter() - started,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def section_c() -> None:
    print("\nC. streaming every customer to output_path (NDJSON), 0 ms latency, one process per run")
    print(f"  {'customers':>10} {'wall s':>8} {'peak RSS MB':>12} {'vs 10k':>8}")
    baseline = None
    for n in (10_000, 100_000):
        with PiriodEmulator(customers=generated_for(n), in_process=False) as emulator, \
                tempfile.TemporaryDirectory() as out:
            env = {**os.environ, **emulator.connection_env()}
            result = subprocess.run([sys.executable, "-c", STREAM_CHILD, f"file://{out}/customers.ndjson"],
                                    env=env, capture_output=True, text=True, check=True)
            figures = json.loads(result.stdout.strip().splitlines()[-1])
        baseline = baseline or figures["rss_mb"]
        print(f"  {figures['count']:>10} {figures['wall']:8.2f} {figures['rss_mb']:12.1f} "
              f"{figures['rss_mb'] / baseline:8.2f}", flush=True)


DAG_TEMPLATE = textwrap.dedent("""
    import pendulum
    from airflow.sdk import DAG
    {import_line}
    with DAG(dag_id="parse_cost", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        for index in range(50):
            {task_line}
""")


def section_d(repeats: int = 7) -> None:
    variants = {
        "EmptyOperator": ("from airflow.providers.standard.operators.empty import EmptyOperator",
                          'EmptyOperator(task_id=f"t{index}")'),
        "PiriodCustomerOperator": ("from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator",
                                   'PiriodCustomerOperator(task_id=f"t{index}", customer_id=f"cus_{index}")'),
    }
    medians = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (import_line, task_line) in variants.items():
            path = Path(folder) / f"{name}.py"
            path.write_text(DAG_TEMPLATE.format(import_line=import_line, task_line=task_line))
            code = f"import runpy; runpy.run_path({str(path)!r})"
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
                times.append(time.perf_counter() - started)
            medians[name] = statistics.median(times)
    print(f"\nD. DAG parse cost: a fresh process importing a DAG file of 50 tasks (median of {repeats})")
    for name, seconds in medians.items():
        print(f"  {name:<24} {seconds:6.3f} s")
    print(f"  ratio Piriod / Empty    {medians['PiriodCustomerOperator'] / medians['EmptyOperator']:6.3f}")


def section_e(n: int, rate: float, latency: float) -> None:
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    print(f"\nE. a rate-limited Piriod: {rate:g} requests/s (burst {rate / 10:g}), {n} ids, max_workers=32, "
          f"{latency * 1000:g} ms latency (median of 3)")
    print(f"  {'wall s':>8} {'N/R s':>7} {'ratio':>7} {'requests':>9} {'429s':>6} {'429 share':>10}")
    with PiriodEmulator(customers=generated_for(n) + 50, latency_ms=latency * 1000, in_process=False) as emulator:
        use(emulator)
        ids = [c["id"] for c in emulator.customers()][:n]
        runs = []
        for _ in range(3):
            emulator.set_rate_limit(rate, burst=rate / 10)  # a full bucket for each run
            emulator.reset()
            started = time.perf_counter()
            PiriodHook().get_customers(ids, max_workers=32)
            wall = time.perf_counter() - started
            statuses = [entry["status"] for entry in emulator.requests()]
            runs.append((wall, len(statuses), statuses.count(429)))
        wall, total, throttled = sorted(runs)[1]
    print(f"  {wall:8.2f} {n / rate:7.2f} {wall / (n / rate):7.2f} {total:9} {throttled:6} {throttled / total:10.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Piriod provider benchmarks")
    parser.add_argument("--n", type=int, default=1000, help="customers for A and E")
    parser.add_argument("--list-n", type=int, default=10_000, help="customers for B")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second allowed in E")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(f"airflow-provider-piriod benchmarks, {date.today()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}")
    started = time.perf_counter()
    section_a(args.n, latency)
    section_b(args.list_n, latency)
    section_c()
    section_d()
    section_e(args.n, args.rate, latency)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
