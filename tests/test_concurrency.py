"""bounded_map: results in order, at most twice the workers started ahead, and the first failure stops the rest."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_provider_piriod.concurrency import bounded_map


def test_results_come_in_order_whatever_finishes_first():
    def slow_first(n: int) -> int:
        time.sleep(0.05 if n == 0 else 0)
        return n * n

    assert list(bounded_map(slow_first, range(20), 4, "t")) == [n * n for n in range(20)]


def test_the_first_failure_stops_the_rest_and_sets_stop():
    started: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        if n == 3:
            raise ValueError("item 3")
        return n

    with pytest.raises(ValueError, match="item 3"):
        list(bounded_map(work, range(1000), 4, "t", stop))
    assert stop.is_set()
    assert len(started) <= 3 + 1 + 2 * 4  # the items before it, it, and at most one window after it


def test_one_worker_runs_in_the_callers_thread():
    assert list(bounded_map(lambda _: threading.current_thread().name, range(2), 1, "t")) == ["MainThread"] * 2
