"""Carry out one write per item with bounded concurrency, a progress line at most every 30 s, and a clean stop.

A record Piriod refuses (400) is that record's failure and the batch goes on; anything else (the API down,
an ambiguous write left unresolved, a bad token) stops the batch: nothing more is started, what runs ends,
and the error is raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from airflow_provider_piriod.concurrency import bounded_map
from airflow_provider_piriod.exceptions import PiriodValidationError

T = TypeVar("T")

PROGRESS_EVERY = 30.0


class Progress:
    """Counts outcomes; logs one INFO line when ``every`` seconds passed since the last (a long batch only)."""

    def __init__(self, log: Any, what: str, total: int, every: float | None = None) -> None:
        self.log, self.what, self.total = log, what, total
        self.every = PROGRESS_EVERY if every is None else every
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def record(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            now = time.monotonic()
            if now - self._last < self.every:
                return
            self._last = now
            done = sum(self.counts.values())
            parts = ", ".join(f"{n} {name}" for name, n in sorted(self.counts.items()))
        self.log.info("%s: %d of %d done (%s)", self.what, done, self.total, parts)


#: the most one refused record's text takes in a task error
REFUSAL_CHARS = 400


def refusal_text(exc: PiriodValidationError) -> str:
    """Piriod's field errors of one refused write, short: ``email: Enter a valid email address.``"""
    if exc.errors:
        fields = list(exc.errors.items())[:5]
        text = "; ".join(f"{name[:60]}: {' '.join(messages)[:150]}" for name, messages in fields)
    else:
        text = str(exc)
    return text if len(text) <= REFUSAL_CHARS else text[: REFUSAL_CHARS - 3] + "..."


def run_each(
    items: Sequence[T],
    work: Callable[[T], str],
    workers: int,
    progress: Progress,
    refused: Callable[[T, PiriodValidationError], str],
) -> None:
    """``work(item)`` for every item, ``workers`` at a time; ``work`` returns the outcome it counts as.

    A refusal is handed to ``refused`` (which returns the outcome to count); any other error stops the batch.
    """

    def one(item: T) -> None:
        try:
            outcome = work(item)
        except PiriodValidationError as exc:
            outcome = refused(item, exc)
        progress.record(outcome)

    for _ in bounded_map(one, items, workers, "piriod-write"):  # the first error raised stops the rest
        pass
