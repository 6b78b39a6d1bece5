"""One hook call: what a failed attempt was, whether to retry it, and what the task log says meanwhile.

A call can make thousands of requests; its log says what a person on call needs: a warning when Piriod
starts rate-limiting and a summary at most every 30 s while it lasts, the first retry of other failures
(the rest at DEBUG), and for long reads a progress line at most every 30 s with the rate and time to go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_piriod.connection import PiriodSettings, setup_problem
from airflow_provider_piriod.exceptions import (
    PiriodConnectionSetupError,
    PiriodError,
    PiriodNetworkError,
    PiriodRateLimitError,
)
from airflow_provider_piriod.redaction import MAX_MESSAGE_CHARS, clean, scrub

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
            self.requests, self.pages = self.requests + call.requests, self.pages + call.pages
            self.retries, self.throttled = self.retries + call.retries, self.throttled + call.throttled


class Call:
    """Shared by every request (and thread) of one hook call; thread-safe."""

    def __init__(self, settings: PiriodSettings, log: Any, what: str, delay: Callable[[int, Exception], float]) -> None:
        self.log, self.what, self.conn_id, self._delay = log, what, settings.conn_id, delay
        self.max_retries, self.rate_limit_wait = settings.max_retries, settings.rate_limit_wait
        self._lock = threading.Lock()
        #: set when the call has failed or its caller stopped: requests still waiting to retry give up
        self.stopped = threading.Event()
        self.started = self._last_success = time.monotonic()
        self._answered = False  # an answer of this call came through: the connection's set-up works
        self._setup_failures = self.throttled = self.retries = self.requests = self._throttled_since_report = 0
        self._next_throttle_report = 0.0
        self.done = self.pages = 0
        self.total: int | None = None
        self.total_pages: int | None = None
        self._next_progress = self.started + REPORT_EVERY

    def wait_after(self, exc: PiriodError, failures: int, throttles: int, pace: float | None = None) -> float:
        """Seconds to wait before the next attempt of a request, or raise. A 429 says "wait", not "failed": it
        spends no retry; the call waits until nothing has got through for ``rate_limit_wait`` seconds."""
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
            plural = "s" if failures != 1 else ""
            raise _amended(
                exc, f" (connection {self.conn_id!r}: {failures} attempt{plural}, max_retries = {self.max_retries})"
            )
        delay = self._delay(failures, exc)
        with self._lock:
            self.retries += 1
            first = self.retries == 1
        attempts = f"attempt {failures} of {self.max_retries + 1} failed ({exc}); retrying in {delay:.2f} s"
        if first:
            self.log.warning("Piriod request %s (further retries of this call are logged at DEBUG)", attempts)
        else:
            self.log.debug("Piriod request %s", attempts)
        return delay

    def _setup_error_or_retry(self, exc: PiriodConnectionSetupError, failures: int) -> PiriodError | None:
        """Raise ``exc`` once confirmed (twice, nothing answered yet); None: try again now; else a network error."""
        with self._lock:
            answered = self._answered
            self._setup_failures += not answered
            seen = self._setup_failures
        if answered:  # the set-up works: a corrupted or cut answer, retried like any network failure
            return exc.as_network_error or exc
        if seen >= 2:
            raise _amended(
                exc, f"{seen} attempts failed the same way, not retried further: a retry cannot help", inside=True
            )
        if failures > self.max_retries:
            raise _amended(exc, f"1 attempt, max_retries = {self.max_retries}", inside=True)
        self.log.warning("Piriod request failed (%s); trying once more to tell a set-up error from a glitch", exc)
        return None

    def _rate_limited(self, exc: PiriodRateLimitError, delay: float, pace: float | None) -> None:
        with self._lock:
            now = time.monotonic()
            stuck = now - self._last_success
            if stuck + delay > self.rate_limit_wait:
                raise _amended(
                    exc,
                    f"; still rate-limited after waiting {stuck:.1f} s with no request of this call getting through "
                    f"(connection extra rate_limit_wait = {self.rate_limit_wait:g} s)",
                )
            self.throttled += 1
            self._throttled_since_report += 1
            first, report = self.throttled == 1, now >= self._next_throttle_report
            if report:
                count, self._throttled_since_report = self._throttled_since_report, 0
                self._next_throttle_report = now + REPORT_EVERY
        speed = f"; pacing at about {pace:.1f} requests/s" if pace else ""
        if first:
            self.log.warning(
                "Piriod is rate-limiting %s (429): waiting as told and slowing down%s; a summary follows at most "
                "every %.0f s",
                *(self.what, speed, REPORT_EVERY),
            )
        elif report:
            self.log.warning(
                "Piriod is still rate-limiting %s: %d requests throttled in the last %.0f s%s",
                *(self.what, count, REPORT_EVERY, speed),
            )
        self.log.debug("Piriod answered 429 (%s); waiting %.2f s", exc, delay)

    def sending(self) -> None:
        """One more attempt goes out (for the tally)."""
        with self._lock:
            self.requests += 1

    def succeeded(self) -> None:
        self._last_success = time.monotonic()
        self._answered = True

    def expect(self, total: int, total_pages: int | None = None) -> None:
        """What the whole call will bring, once known (a list's ``count``, or the number of ids)."""
        self.total, self.total_pages = total, total_pages

    def advance(self, objects: int, pages: int = 0) -> None:
        """``objects`` (and ``pages``) more read; a progress line if the last is ``REPORT_EVERY`` old."""
        with self._lock:
            self.done, self.pages = self.done + objects, self.pages + pages
            now = time.monotonic()
            if now < self._next_progress:
                return
            self._next_progress = now + REPORT_EVERY
            done, pages_done = self.done, self.pages
        rate = done / max(now - self.started, 1e-9)
        of_pages = f" ({pages_done} of {self.total_pages} pages)" if self.total_pages else ""
        if not self.total:
            self.log.info("Read %d %s%s at %.0f/s", done, self.what, of_pages, rate)
            return
        left = _duration(max(self.total - done, 0) / rate if rate else float("inf"))
        self.log.info("Read %d of %d %s%s at %.0f/s; about %s to go", done, self.total, self.what, of_pages, rate, left)

    def finish(self) -> None:
        """The closing summary: only when something worth saying happened."""
        if self.throttled:
            took = _duration(time.monotonic() - self.started)
            self.log.warning(
                "Piriod rate limiting of %s is over: %d requests were throttled in %s", self.what, self.throttled, took
            )
        if self.retries > 1:
            self.log.info("Piriod: %d requests of %s were retried after transient failures", self.retries, self.what)


class Funnel:
    """What both transports share: the settings, the log, the backoff, and the tally of their calls."""

    def __init__(self, settings: PiriodSettings, *, log: Any, retry_delay: Callable[[int, Exception], float]) -> None:
        self.settings, self.log, self._retry_delay = settings, log, retry_delay
        self.tally = Tally()  #: requests, pages and retries of every call so far

    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    @contextmanager
    def _calling(self, what: str) -> Iterator[Call]:
        """One hook call, sync or async: its bookkeeping (added to the tally), every error scrubbed on the way out."""
        call = Call(self.settings, self.log, what, self._retry_delay)
        try:
            yield call
        except PiriodError as exc:
            raise scrub(exc, self.settings.token) from exc.__cause__
        finally:
            call.finish()
            self.tally.add(call)


# ----------------------------------------------------------------------------- what a failed attempt was


def network_error(
    method: str, path: str, exc: BaseException, secrets: Any = (), *, base_url: str = "", conn_id: str = "?"
) -> PiriodNetworkError | PiriodConnectionSetupError:
    """The typed error of a failed attempt: :class:`PiriodConnectionSetupError` if it looks like the set-up's
    fault (the call confirms that with one more attempt: a corrupted TLS record looks the same once, not twice)."""
    text = f"Piriod {method} {path} failed before a complete answer arrived: {type(exc).__name__}: {exc}"
    transient = PiriodNetworkError(clean(text, secrets, MAX_MESSAGE_CHARS), method=method, path=path)
    problem = setup_problem(exc, base_url)
    if not problem:
        return transient
    text = f"Piriod {method} {path}: {problem} ({type(exc).__name__}; connection {conn_id!r})"
    return PiriodConnectionSetupError(
        clean(text, secrets, MAX_MESSAGE_CHARS), method=method, path=path, as_network_error=transient
    )


def deadline_error(
    method: str, path: str, timeout: float, status: int | None = None, *, request_sent: bool = False
) -> PiriodNetworkError:
    what = f"Piriod {method} {path}: answer not complete within the {timeout:g} s deadline"
    return PiriodNetworkError(what, request_sent=request_sent, status_code=status, method=method, path=path)


def may_have_acted(exc: PiriodError) -> bool:
    """Whether Piriod may have carried out a request that failed this way: it left, and no refusal came back."""
    if isinstance(exc, PiriodNetworkError):
        return exc.request_sent
    if isinstance(exc, PiriodConnectionSetupError):
        return False  # nothing reached Piriod
    status = exc.status_code  # a 5xx, or a 2xx/3xx whose body could not be used; a 4xx is a refusal
    return status is None or not 400 <= status < 500


def _amended(exc: PiriodError, text: str, *, inside: bool = False) -> PiriodError:
    """``exc`` with ``text`` added to its message: at its end, or inside a set-up error's closing ``(...)``."""
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
    if message is not None and (not inside or message.endswith(")")):
        exc.args = (f"{message[:-1]}: {text})" if inside else message + text, *exc.args[1:])
    return exc


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "an unknown time"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
