"""One hook call's bookkeeping: when to retry, how long to wait out rate limits, and what the log says.

A call (``get_objects`` of 10,000 ids, a page walk of a year of invoices) can make thousands of
requests. Its task log should say what a person on call needs, not one line per request: one
warning when Piriod starts rate-limiting, a summary at most every 30 s while it lasts and one at
the end; the first retry of other failures, the rest at DEBUG; and for long reads a progress line
at most every 30 s with the rate and the time to go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import PiriodConnectionSetupError, PiriodError, PiriodRateLimitError
from airflow_provider_piriod.transport.answers import scrub

#: seconds between two throttling summaries, and between two progress lines
REPORT_EVERY = 30.0
_NO_ADVICE = Exception("no Retry-After")  # asks the backoff for its own delay


class Tally:
    """What every call of one transport did, added up as each call ends: for a task's one-line summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = self.requests = self.pages = self.retries = self.throttled = 0

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls += 1
            self.requests += call.requests
            self.pages += call.pages
            self.retries += call.retries
            self.throttled += call.throttled


class Call:
    """Shared by every request (and thread) of one hook call; thread-safe."""

    def __init__(
        self,
        log: Any,
        what: str,
        *,
        max_retries: int,
        rate_limit_wait: float,
        delay: Callable[[int, Exception], float],
        conn_id: str = "?",
    ) -> None:
        self.log, self.what, self.conn_id = log, what, conn_id
        self.max_retries, self.rate_limit_wait = max_retries, rate_limit_wait
        self._delay = delay
        self._lock = threading.Lock()
        #: set when the call has failed or its caller stopped: requests still waiting to retry give up
        self.stopped = threading.Event()
        self.started = self._last_success = time.monotonic()
        self._answered = False  # an answer of this call came through: the connection's set-up works
        self._setup_failures = 0
        self.throttled = self.retries = self.requests = 0
        self._throttled_since_report = 0
        self._next_throttle_report = 0.0
        self.done = self.pages = 0
        self.total: int | None = None
        self.total_pages: int | None = None
        self._next_progress = self.started + REPORT_EVERY

    # ------------------------------------------------------------------ retries

    def wait_after(self, exc: PiriodError, failures: int, throttles: int, pace: float | None = None) -> float:
        """Seconds to wait before the next attempt of a request, or raise: the decision for both transports.

        A 429 says "wait", not "failed": it does not spend ``max_retries``; the call waits it out until
        nothing has got through for ``rate_limit_wait`` seconds. Everything else spends a retry.
        """
        if isinstance(exc, PiriodRateLimitError):
            # a Retry-After of 0 (or in the past) must not turn a long throttle into a hot loop
            floor = self._delay(throttles - 1, _NO_ADVICE) / 10 if throttles > 1 else 0.0
            delay = max(self._delay(throttles, exc), floor)
            self._rate_limited(exc, delay, pace)
            return delay
        if isinstance(exc, PiriodConnectionSetupError):
            confirmed = self._setup_error_or_retry(exc, failures)
            if confirmed is None:
                return 0.0
            exc = confirmed
        if failures > self.max_retries:
            raise self._given_up(exc, failures, f"max_retries = {self.max_retries}")
        delay = self._delay(failures, exc)
        with self._lock:
            self.retries += 1
            first = self.retries == 1
        if first:
            self.log.warning(
                "Piriod request attempt %d of %d failed (%s); retrying in %.2f s (further retries of "
                "this call are logged at DEBUG)",
                failures,
                self.max_retries + 1,
                exc,
                delay,
            )
        else:
            self.log.debug(
                "Piriod request attempt %d of %d failed (%s); retrying in %.2f s",
                failures,
                self.max_retries + 1,
                exc,
                delay,
            )
        return delay

    def _setup_error_or_retry(self, exc: PiriodConnectionSetupError, failures: int) -> PiriodError | None:
        """Raise ``exc`` once confirmed (twice, nothing answered yet); None: try again now; else a network error."""
        with self._lock:
            answered = self._answered
            if not answered:
                self._setup_failures += 1
            seen = self._setup_failures
        if answered:  # the set-up works: a corrupted or cut answer, retried like any network failure
            return exc.as_network_error or exc
        if seen >= 2:
            raise _with_note(exc, f"{seen} attempts failed the same way, not retried further: a retry cannot help")
        if failures > self.max_retries:
            raise _with_note(exc, f"1 attempt, max_retries = {self.max_retries}")
        self.log.warning(
            "Piriod request failed (%s); trying once more to tell a set-up error from a transient one", exc
        )
        return None

    def _given_up(self, exc: PiriodError, attempts: int, why: str) -> PiriodError:
        """``exc`` with the connection and the attempts made added to its message, as it leaves the call."""
        plural = "s" if attempts != 1 else ""
        note = f" (connection {self.conn_id!r}: {attempts} attempt{plural}, {why})"
        if exc.args and isinstance(exc.args[0], str):
            exc.args = (exc.args[0] + note, *exc.args[1:])
        return exc

    def _rate_limited(self, exc: PiriodRateLimitError, delay: float, pace: float | None) -> None:
        with self._lock:
            now = time.monotonic()
            stuck = now - self._last_success
            if stuck + delay > self.rate_limit_wait:
                raise PiriodRateLimitError(
                    f"{exc}; still rate-limited after waiting {stuck:.1f} s with no request of this call getting "
                    f"through (connection extra rate_limit_wait = {self.rate_limit_wait:g} s)",
                    retry_after=exc.retry_after,
                    status_code=exc.status_code,
                    detail=exc.detail,
                    method=exc.method,
                    path=exc.path,
                ) from None
            self.throttled += 1
            self._throttled_since_report += 1
            first, report = self.throttled == 1, now >= self._next_throttle_report
            if report:
                count, self._throttled_since_report = self._throttled_since_report, 0
                self._next_throttle_report = now + REPORT_EVERY
        speed = f"; pacing at about {pace:.1f} requests/s" if pace else ""
        if first:
            self.log.warning(
                "Piriod is rate-limiting %s (429): waiting as told and slowing down%s; a summary "
                "follows at most every %.0f s",
                self.what,
                speed,
                REPORT_EVERY,
            )
        elif report:
            self.log.warning(
                "Piriod is still rate-limiting %s: %d requests throttled in the last %.0f s%s",
                self.what,
                count,
                REPORT_EVERY,
                speed,
            )
        self.log.debug("Piriod answered 429 (%s); waiting %.2f s", exc, delay)

    def sending(self) -> None:
        """One more attempt goes out (for the tally)."""
        with self._lock:
            self.requests += 1

    def succeeded(self) -> None:
        self._last_success = time.monotonic()
        self._answered = True

    # ------------------------------------------------------------------ progress

    def expect(self, total: int, total_pages: int | None = None) -> None:
        """What the whole call will bring, once known (a list's ``count``, or the number of ids)."""
        self.total, self.total_pages = total, total_pages

    def advance(self, objects: int, pages: int = 0) -> None:
        with self._lock:
            self.done += objects
            self.pages += pages
            now = time.monotonic()
            if now < self._next_progress:
                return
            self._next_progress = now + REPORT_EVERY
            done, pages_done = self.done, self.pages
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        of_pages = f" ({pages_done} of {self.total_pages} pages)" if self.total_pages else ""
        if self.total:
            left = max(self.total - done, 0) / rate if rate else float("inf")
            self.log.info(
                "Read %d of %d %s%s at %.0f/s; about %s to go",
                done,
                self.total,
                self.what,
                of_pages,
                rate,
                _duration(left),
            )
        else:
            self.log.info("Read %d %s%s at %.0f/s", done, self.what, of_pages, rate)

    def finish(self) -> None:
        """The closing summary: only when something worth saying happened."""
        if self.throttled:
            self.log.warning(
                "Piriod rate limiting of %s is over: %d requests were throttled in %s",
                self.what,
                self.throttled,
                _duration(time.monotonic() - self.started),
            )
        if self.retries > 1:
            self.log.info("Piriod: %d requests of %s were retried after transient failures", self.retries, self.what)


@contextmanager
def one_call(
    settings: PiriodSettings,
    log: Any,
    what: str,
    delay: Callable[[int, Exception], float],
    tally: Tally | None = None,
) -> Iterator[Call]:
    """One hook call, sync or async: its bookkeeping (added to ``tally``), every error scrubbed on the way out."""
    call = Call(
        log,
        what,
        max_retries=settings.max_retries,
        rate_limit_wait=settings.rate_limit_wait,
        delay=delay,
        conn_id=settings.conn_id,
    )
    try:
        yield call
    except PiriodError as exc:
        raise scrub(exc, settings.token) from exc.__cause__
    finally:
        call.finish()
        if tally is not None:
            tally.add(call)


def _with_note(exc: PiriodError, note: str) -> PiriodError:
    """``exc`` with ``note`` appended to its message (a set-up error's message ends with the connection id)."""
    if exc.args and isinstance(exc.args[0], str) and exc.args[0].endswith(")"):
        exc.args = (f"{exc.args[0][:-1]}: {note})", *exc.args[1:])
    return exc


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "an unknown time"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"
