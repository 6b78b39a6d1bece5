"""
Where the client thread spends its time reading a list page after page (0 ms latency, emulator in its own process).

Prints the share of the profiled wall time under a few known functions, then the top functions by own time,
so a change to decoding or per-request overhead shows up as a change in these shares.

    .venv/bin/python benchmarks/profile_client.py [--customers 10000] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="piriod-profile-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_piriod.testing import PiriodEmulator

#: (label, file suffix, function name) of the calls whose cumulative share is reported
WATCHED = [
    ("JSON decoding (jsoncodec.loads)", "jsoncodec.py", "loads"),
    ("one attempt (attempt.send: everything per request)", "transport/attempt.py", "send"),
    ("  sending and reading the status line and headers", "urllib3/poolmanager.py", "urlopen"),
    ("  reading and decoding the body", "transport/attempt.py", "_read_body"),
    ("page bookkeeping (PageWalk.fresh)", "transport/pages.py", "fresh"),
]


def profile_sequential_read(customers: int) -> tuple[pstats.Stats, float, int]:
    """Profile one sequential read of every customer; returns the stats, the wall time and the page count."""
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    with PiriodEmulator(customers=customers, in_process=False) as emulator:
        os.environ.update(emulator.connection_env())
        hook = PiriodHook()
        hook.count_customers()  # connection and session set up outside the profile
        emulator.reset()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        count = sum(1 for _ in hook.iter_customer_json(page_size=100))
        profiler.disable()
        wall = time.perf_counter() - started
        pages = len(emulator.requests())
    print(f"read {count} customers in {pages} pages, {wall:.2f} s wall under the profiler")
    return pstats.Stats(profiler), wall, pages


def cumulative_share(stats: pstats.Stats, suffix: str, name: str, total: float) -> float:
    """The cumulative time of the matching function(s) as a share of ``total``."""
    seconds = sum(
        entry[3]
        for (path, _, func), entry in stats.stats.items()  # type: ignore[attr-defined]
        if func == name and path.endswith(suffix)
    )
    return seconds / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    stats, _, pages = profile_sequential_read(args.customers)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"profiled time {total:.3f} s, {total / pages * 1000:.2f} ms per page\n")
    print(f"  {'share':>6}  {'ms/page':>7}  under")
    for label, suffix, name in WATCHED:
        share = cumulative_share(stats, suffix, name, total)
        print(f"  {share:6.1%}  {share * total / pages * 1000:7.3f}  {label}")
    print(f"\ntop {args.top} functions by own time")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
