"""How fast, and how many at once, one hook's requests may go out to Piriod."""

from __future__ import annotations

import threading
import time
from collections import deque

from airflow_provider_piriod.protocol import MAX_WORKERS


class Throttle:
    """Shared by every worker of one hook; a rate-limited Piriod sees the hook settle just under the rate it
    allows, instead of every worker retrying into the limit.

    * A ``Retry-After`` pauses all workers, not just the one that was told.
    * Requests in flight start at 4 and grow by one per success (doubling every round trip, as TCP slow start)
      up to ``max_workers``. A 429 halves them (once per burst); then each success adds ``1/limit``.
    * A 429 also starts pacing: starts are spaced at the rate Piriod accepted over the last second; each
      success then shortens the gap by 1 % to find out whether more is allowed.
    """

    def __init__(self, ceiling: int = MAX_WORKERS, start: int = 4) -> None:
        self._ready = threading.Condition()
        self._ceiling = float(ceiling)
        self._limit = float(min(start, ceiling))
        self._slow_start = True
        self._in_flight = 0
        self._paused_until = 0.0
        self._gap = 0.0  # seconds between request starts; 0 until Piriod throttles
        self._next_start = 0.0
        self._recent_successes: deque[float] = deque()
        self._round = 0  # bumped on every decrease, so one burst of 429s counts once

    @property
    def limit(self) -> float:
        return self._limit

    @property
    def pace(self) -> float | None:
        """Requests per second the hook is pacing at, once Piriod has throttled it (None before)."""
        return 1 / self._gap if self._gap else None

    def acquire(self) -> int:
        """Wait for the pause, a free slot and the pacing gap; returns the round the request belongs to."""
        with self._ready:
            while True:
                now = time.monotonic()
                wait = max(self._paused_until, self._next_start) - now
                if wait > 0:
                    self._ready.wait(wait)
                elif self._in_flight >= max(1, int(self._limit)):
                    self._ready.wait()
                else:
                    self._in_flight += 1
                    self._next_start = now + self._gap
                    return self._round

    def release(self, round_: int, *, throttled: bool = False, pause: float | None = None) -> None:
        with self._ready:
            now = time.monotonic()
            self._in_flight -= 1
            if pause:
                self._paused_until = max(self._paused_until, now + pause)
            recent = self._recent_successes
            while recent and recent[0] < now - 1.0:
                recent.popleft()
            if throttled:
                if round_ == self._round:
                    self._limit = max(1.0, min(self._limit, self._in_flight + 1) / 2)
                    if len(recent) >= 2:  # the rate Piriod just accepted
                        self._gap = max(self._gap, max(now - recent[0], 1e-3) / len(recent))
                    self._round += 1
                    self._slow_start = False
            else:
                recent.append(now)
                self._limit = min(self._ceiling, self._limit + (1 if self._slow_start else 1 / self._limit))
                self._gap *= 0.99
            self._ready.notify_all()
