"""
``make bench``: the provider against the generic routes, side by side, in one run.

The emulator runs in its own process with injected latency, so the client is measured, not the
server. Every figure is a ratio to what the network allows (the floor), taken in this same run;
runs marked "median of 5" alternate with the ideal client's and keep the median of each. Each timed
run starts right after a full garbage collection: the collections its own objects cause are in its
time, those that the objects of earlier runs would have caused are not.

    A. N customers by id: PiriodHook.get_customers at 1/8/16/32 workers, a requests.get loop,
       an HttpHook loop.                                     floor: ceil(N/C) x latency
    B. every customer through the list endpoint (page_size 100): following next, parallel pages,
       HttpOperator with pagination_function.                floor: pages (or 1 + ceil((P-1)/C)) x latency
    A and B are also a ratio to an "ideal client" run next to the hook: the same requests with as
    many workers, over bare http.client connections, decoded by the fastest decoder installed,
    nothing checked. On a small machine the emulator and the client share the CPU, and the
    emulator's own time per request is in every figure, so this is the best the machine allows.
    C. streaming 10k and 100k customers to output_path at 0 ms: peak RSS of the task process.
    D. DAG parse cost: 50 PiriodCustomerOperator tasks vs 50 EmptyOperator tasks.
    E. a rate-limited Piriod (token bucket, 429 + Retry-After): N ids with 32 workers vs N/R, and the
       WARNING lines the hook logged.
    W. an upsert of 2,000 customers (half new, a quarter changed) at 16 workers beside a plain requests
       loop doing the same work (see writes.py).           floor: requests needed x latency / 16
    F. A and B at 16 workers at 0 ms, the latency above and 100 ms: the ideal client, the package at a
       baseline commit (before) and this tree's (after), in turns on one emulator (see versions.py).

    .venv/bin/python benchmarks/run.py [--n 1000] [--latency-ms 20] [--rate 200] [--only ABCDEFW]
                                       [--baseline 61d1b5b] [--versus-ms 0,20,100]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="piriod-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import requests

from airflow_provider_piriod.testing import PiriodEmulator
from versions import BASELINE, section_versions
from writes import section_w

LIVE_SHARE = 0.9  # the emulator makes about 10 % of its customers test-mode records


def generated_for(live: int) -> int:
    """How many customers to generate so that about ``live`` of them are live records."""
    return math.ceil(live / LIVE_SHARE)


class Table:
    """Rows of (label, wall seconds, requests, floor seconds) printed with the ratio to the floor.

    With ``ideal=True`` a last column gives the ratio to the ideal client's wall time of the same run.
    """

    def __init__(self, title: str, *, ideal: bool = False) -> None:
        print(f"\n{title}")
        print(
            f"  {'method':<58} {'wall s':>8} {'requests':>9} {'floor s':>8} {'ratio':>7}"
            + (f" {'vs ideal':>9}" if ideal else "")
        )

    @staticmethod
    def row(label: str, wall: float, count: int | str, floor: float | None, ideal: float | None = None) -> None:
        ratio = f"{wall / floor:7.2f}" if floor else "      -"
        floor_text = f"{floor:8.2f}" if floor else "       -"
        ideal_text = f" {wall / ideal:9.2f}" if ideal else ""
        print(f"  {label:<58} {wall:8.2f} {count!s:>9} {floor_text} {ratio}{ideal_text}", flush=True)


def timed(emulator: PiriodEmulator, action) -> tuple[float, int]:
    emulator.reset()
    gc.collect()  # what earlier runs left for the collector is not charged to this one
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    return wall, len(emulator.requests())


PAIRED_ROUNDS = 5


def paired_medians(emulator: PiriodEmulator, first, second) -> tuple[tuple[float, int], tuple[float, int]]:
    """The median run of each of two actions over PAIRED_ROUNDS rounds, taken in turns (and each round the other
    one first), so that a change in the machine's load falls on both alike."""
    runs: tuple[list[tuple[float, int]], list[tuple[float, int]]] = ([], [])
    for round_number in range(PAIRED_ROUNDS):
        order = (0, 1) if round_number % 2 == 0 else (1, 0)
        for index in order:
            runs[index].append(timed(emulator, (first, second)[index]))
    middle = PAIRED_ROUNDS // 2
    return sorted(runs[0])[middle], sorted(runs[1])[middle]


def use(emulator: PiriodEmulator) -> None:
    os.environ.update(emulator.connection_env())
    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps(
        {
            "conn_type": "http",
            "host": emulator.url,
            "extra": {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace},
        }
    )


def section_a(n: int, latency: float) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_piriod.hooks.piriod import PiriodHook

    with PiriodEmulator(customers=generated_for(n) + 50, latency_ms=latency * 1000, in_process=False) as emulator:
        use(emulator)
        ids = [c["id"] for c in emulator.customers()][:n]
        table = Table(f"A. {n} customers by id, {latency * 1000:g} ms latency", ideal=True)
        ideal_by_id(emulator, ids[:100], 16)  # the emulator's first reads are slower: not part of any figure
        hook = PiriodHook()
        wall, count = timed(emulator, lambda: hook.get_customers(ids, max_workers=1))
        table.row("PiriodHook.get_customers max_workers=1", wall, count, n * latency)
        for workers in (8, 16, 32):
            floor = math.ceil(n / workers) * latency
            hook = PiriodHook()
            (ideal, count), (wall, hook_count) = paired_medians(
                emulator,
                lambda workers=workers: ideal_by_id(emulator, ids, workers),
                lambda hook=hook, workers=workers: hook.get_customers(ids, max_workers=workers),
            )
            note = f"(median of {PAIRED_ROUNDS})"
            table.row(f"ideal client workers={workers} {note}", ideal, count, floor, ideal)
            table.row(f"PiriodHook.get_customers max_workers={workers} {note}", wall, hook_count, floor, ideal)
        headers = {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
        wall, count = timed(
            emulator,
            lambda: [requests.get(f"{emulator.url}/customers/{i}/", headers=headers, timeout=30).json() for i in ids],
        )
        table.row("requests.get loop", wall, count, n * latency)
        http = HttpHook(method="GET", http_conn_id="bench_http")
        wall, count = timed(emulator, lambda: [http.run(f"/customers/{i}/").json() for i in ids])
        table.row("HttpHook.run loop (providers-http)", wall, count, n * latency)


def fastest_decoder() -> Callable[[bytes], Any]:
    """msgspec's plain decoder if installed (floats only, nothing kept exact), else json.loads."""
    try:
        import msgspec
    except ImportError:
        return json.loads
    return msgspec.json.Decoder().decode


class IdealClient:
    """As little client as possible: one keep-alive http.client connection per thread, the fastest decoder
    installed, no checks at all. What this machine allows, measured next to the hook in the same run."""

    def __init__(self, emulator: PiriodEmulator) -> None:
        self.netloc = urlsplit(emulator.url).netloc
        self.headers = {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
        self.decode = fastest_decoder()
        self.local = threading.local()
        self.connections: list[http.client.HTTPConnection] = []

    def get(self, target: str) -> Any:
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection(self.netloc, timeout=30)
            self.connections.append(self.local.connection)
        self.local.connection.request("GET", target, headers=self.headers)
        return self.decode(self.local.connection.getresponse().read())

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def ideal_by_id(emulator: PiriodEmulator, ids: list[str], workers: int) -> list[Any]:
    """Every customer of ``ids``, ``workers`` at a time, with the ideal client."""
    client = IdealClient(emulator)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda customer_id: client.get(f"/customers/{customer_id}/"), ids))
    finally:
        client.close()


def ideal_list_read(emulator: PiriodEmulator, page_size: int, workers: int) -> list[dict[str, Any]]:
    """Every customer the way the hook's parallel mode reads them (page 1, then the rest ``workers`` at a time),
    with the ideal client."""
    client = IdealClient(emulator)

    def page(number: int) -> dict[str, Any]:
        return client.get(f"/customers/?page={number}&page_size={page_size}")

    try:
        first = page(1)
        numbers = range(2, math.ceil(first["count"] / page_size) + 1)
        if workers == 1:
            rest = [page(number) for number in numbers]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                rest = list(pool.map(page, numbers))
        return [customer for each in (first, *rest) for customer in each["results"]]
    finally:
        client.close()


def section_b(n: int, latency: float) -> None:
    from airflow.providers.http.operators.http import HttpOperator

    from airflow_provider_piriod.hooks.piriod import PiriodHook

    with PiriodEmulator(customers=generated_for(n), latency_ms=latency * 1000, in_process=False) as emulator:
        use(emulator)
        live = len(emulator.customers())
        pages = math.ceil(live / 100)
        table = Table(f"B. all {live} customers through the list endpoint (page_size 100, {pages} pages)", ideal=True)
        hook = PiriodHook()
        ideal_list_read(emulator, 100, 16)  # the emulator's first reads are slower: not part of any figure
        ideal, count = timed(emulator, lambda: ideal_list_read(emulator, 100, 1))
        table.row("ideal client, page after page", ideal, count, pages * latency, ideal)
        wall, count = timed(emulator, lambda: list(hook.iter_customer_json(page_size=100)))
        table.row("PiriodHook following next", wall, count, pages * latency, ideal)
        sequential_ideal = ideal
        for workers in (4, 8, 16):
            floor = (1 + math.ceil((pages - 1) / workers)) * latency
            (ideal, count), (wall, hook_count) = paired_medians(
                emulator,
                lambda workers=workers: ideal_list_read(emulator, 100, workers),
                lambda workers=workers: list(hook.iter_customer_json(page_size=100, max_workers=workers)),
            )
            note = f"(median of {PAIRED_ROUNDS})"
            table.row(f"ideal client, parallel pages workers={workers} {note}", ideal, count, floor, ideal)
            table.row(f"PiriodHook parallel pages max_workers={workers} {note}", wall, hook_count, floor, ideal)

        def next_page(response):
            following = response.json().get("next")
            return {"endpoint": following.removeprefix(emulator.url), "data": {}} if following else None

        pull = HttpOperator(
            task_id="pull",
            http_conn_id="bench_http",
            method="GET",
            endpoint="/customers/",
            data={"page_size": 100},
            pagination_function=next_page,
        )
        wall, count = timed(emulator, lambda: pull.execute({}))
        table.row("HttpOperator with pagination_function", wall, count, pages * latency, sequential_ideal)


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
        with (
            PiriodEmulator(customers=generated_for(n), in_process=False) as emulator,
            tempfile.TemporaryDirectory() as out,
        ):
            env = {**os.environ, **emulator.connection_env()}
            result = subprocess.run(
                [sys.executable, "-c", STREAM_CHILD, f"file://{out}/customers.ndjson"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
        baseline = baseline or figures["rss_mb"]
        print(
            f"  {figures['count']:>10} {figures['wall']:8.2f} {figures['rss_mb']:12.1f} "
            f"{figures['rss_mb'] / baseline:8.2f}",
            flush=True,
        )


DAG_TEMPLATE = textwrap.dedent("""
    import pendulum
    from airflow.sdk import DAG
    {import_line}
    with DAG(dag_id="parse_cost", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        for index in range(50):
            {task_line}
""")


def section_d(repeats: int = 11) -> None:
    variants = {
        "EmptyOperator": (
            "from airflow.providers.standard.operators.empty import EmptyOperator",
            'EmptyOperator(task_id=f"t{index}")',
        ),
        "PiriodCustomerOperator": (
            "from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator",
            'PiriodCustomerOperator(task_id=f"t{index}", customer_id=f"cus_{index}")',
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as folder:
        codes = {}
        for name, (import_line, task_line) in variants.items():
            path = Path(folder) / f"{name}.py"
            path.write_text(DAG_TEMPLATE.format(import_line=import_line, task_line=task_line))
            codes[name] = f"import runpy; runpy.run_path({str(path)!r})"
        # interleaved, first one then the other first, so the machine's load and warm caches fall on both alike
        for round_number in range(repeats):
            order = list(codes.items())
            for name, code in order if round_number % 2 else reversed(order):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
                times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(runs) for name, runs in times.items()}
    print(f"\nD. DAG parse cost: a fresh process importing a DAG file of 50 tasks (median of {repeats})")
    for name, seconds in medians.items():
        print(f"  {name:<24} {seconds:6.3f} s")
    print(f"  ratio Piriod / Empty    {medians['PiriodCustomerOperator'] / medians['EmptyOperator']:6.3f}")


class WarningCount:
    """Stands in for a hook's logger and counts the lines it logs at WARNING or above."""

    def __init__(self, log: Any) -> None:
        self.log, self.count = log, 0

    def __getattr__(self, name: str) -> Any:
        if name in ("warning", "error", "exception", "critical"):
            self.count += 1
        return getattr(self.log, name)


def section_e(n: int, rate: float, latency: float) -> None:
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    print(
        f"\nE. a rate-limited Piriod: {rate:g} requests/s (burst {rate / 10:g}), {n} ids, max_workers=32, "
        f"{latency * 1000:g} ms latency (median of 3)"
    )
    print(f"  {'wall s':>8} {'N/R s':>7} {'ratio':>7} {'requests':>9} {'429s':>6} {'429 share':>10} {'WARNINGs':>9}")
    with PiriodEmulator(customers=generated_for(n) + 50, latency_ms=latency * 1000, in_process=False) as emulator:
        use(emulator)
        ids = [c["id"] for c in emulator.customers()][:n]
        runs = []
        for _ in range(3):
            emulator.set_rate_limit(rate, burst=rate / 10)  # a full bucket for each run
            emulator.reset()
            hook = PiriodHook()
            hook._log = warnings = WarningCount(hook.log)
            started = time.perf_counter()
            hook.get_customers(ids, max_workers=32)
            wall = time.perf_counter() - started
            statuses = [entry["status"] for entry in emulator.requests()]
            runs.append((wall, len(statuses), statuses.count(429), warnings.count))
        wall, total, throttled, warned = sorted(runs)[1]
    print(
        f"  {wall:8.2f} {n / rate:7.2f} {wall / (n / rate):7.2f} {total:9} {throttled:6} {throttled / total:10.1%} "
        f"{warned:9}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Piriod provider benchmarks")
    parser.add_argument("--n", type=int, default=1000, help="customers for A and E")
    parser.add_argument("--list-n", type=int, default=10_000, help="customers for B")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second allowed in E")
    parser.add_argument("--write-n", type=int, default=2000, help="records for W")
    parser.add_argument("--only", default="ABCDEFW", help="the scenarios to run, e.g. BE")
    parser.add_argument(
        "--baseline", default=BASELINE, help="the commit whose package is the before column of F (default %(default)s)"
    )
    parser.add_argument("--versus-ms", help="the latencies of F in ms, comma-separated (default 0, --latency-ms, 100)")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    versus = [float(ms) for ms in args.versus_ms.split(",")] if args.versus_ms else [0.0, args.latency_ms, 100.0]
    print(
        f"airflow-provider-piriod benchmarks, {date.today()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    started = time.perf_counter()
    sections = {
        "A": lambda: section_a(args.n, latency),
        "B": lambda: section_b(args.list_n, latency),
        "C": section_c,
        "D": section_d,
        "E": lambda: section_e(args.n, args.rate, latency),
        "W": lambda: section_w(args.write_n, latency),
        "F": lambda: section_versions(
            args.n,
            sorted(set(versus), key=versus.index),
            args.baseline,
            customers=generated_for(max(args.n, args.list_n)),
            ideal_by_id=ideal_by_id,
            ideal_list_read=ideal_list_read,
        ),
    }
    for name, run in sections.items():
        if name in args.only.upper():
            run()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
