"""The blocking transport behind PiriodHook: one request funnel, one page walker, over a pooled session.

A hook method hands it a resource and an id, ids or filters; it owns the whole cycle (throttle,
send, read within the deadline and size cap, decode, check the envelope, follow ``next``) and
hands back checked JSON objects. Every error leaving it has been through :func:`scrub`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from functools import cached_property
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import requests
import urllib3

from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodConnectionSetupError,
    PiriodError,
    PiriodNetworkError,
    PiriodNotFoundError,
    PiriodRateLimitError,
)
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS
from airflow_provider_piriod.resources import Resource
from airflow_provider_piriod.transport.answers import (
    check_page,
    check_requested_object,
    answer_json,
    deadline_error,
    network_error,
    scrub,
)
from airflow_provider_piriod.transport.attempt import attempt_deadline
from airflow_provider_piriod.transport.bodies import open_body
from airflow_provider_piriod.transport.calls import Call, Tally, one_call
from airflow_provider_piriod.transport.pages import EXTRA_PAGES, PageWalk, pages_for
from airflow_provider_piriod.transport.session import Route, build_session
from airflow_provider_piriod.transport.throttle import Throttle

T = TypeVar("T")
R = TypeVar("R")
READ_STEP = 64 * 1024
_CLIENT_ERRORS = (urllib3.exceptions.HTTPError, OSError, ValueError)


class PiriodTransport:
    """Requests to one Piriod workspace for one hook; thread-safe, so pages and ids can be fetched at once."""

    def __init__(
        self, settings: PiriodSettings, *, log: Any, retry_delay: Callable[[int, Exception], float], throttle: Throttle
    ) -> None:
        self.settings = settings
        self.log = log
        self._retry_delay = retry_delay
        self.throttle = throttle
        #: requests, pages and retries of every call so far
        self.tally = Tally()

    @cached_property
    def session(self) -> requests.Session:
        """The pooled session (``get_conn()``): the headers, token, proxy and CA bundle requests go out with."""
        return build_session(self.settings)

    @cached_property
    def _route(self) -> Route:
        """urllib3's pools for the configured origin, built from the session as the first request goes out."""
        return Route(self.settings, self.session)

    # ------------------------------------------------------------------ what the hook asks for

    def get_object(self, resource: Resource, object_id: str) -> dict[str, Any]:
        """One object by (validated) id; it must be the object asked for."""
        with self._calling(resource.name) as call:
            return self._get_object(resource, object_id, call)

    def get_objects(
        self,
        resource: Resource,
        object_ids: list[str],
        *,
        workers: int,
        ignore_missing: bool,
        convert: Callable[[dict[str, Any]], T],
    ) -> dict[str, T]:
        """Objects by id, ``workers`` at a time; a window of requests, so the first failure stops the rest.

        Each object is passed through ``convert`` (the hook's model) here, in order, as it arrives, while the
        workers go on with their next requests. On the worker that fetched it, building the model delayed that
        worker's next request and held the interpreter lock the other workers needed to send theirs: A in
        ``make bench`` took 2 to 5 % longer.
        """

        def fetch(object_id: str) -> dict[str, Any] | None:
            try:
                return self._get_object(resource, object_id, call)
            except PiriodNotFoundError:
                if ignore_missing:
                    return None
                raise
            finally:
                call.advance(1)

        _ = self._route  # built once here (with the session), not by racing worker threads
        with self._calling(resource.name) as call:
            call.expect(len(object_ids))
            # closed as soon as anything fails here, a model included: the window's requests stop at once,
            # not when the generator is collected (an error being handled keeps it alive)
            with closing(bounded_map(fetch, object_ids, workers, "piriod", call.stopped)) as fetched:
                found = zip(object_ids, fetched, strict=True)
                return {object_id: convert(obj) for object_id, obj in found if obj is not None}

    def count(self, resource: Resource, params: Mapping[str, str]) -> int:
        with self._calling(resource.name) as call:
            return self._get_page(self._url(resource.path), call, {**params, "page_size": "1"})["count"]

    def iter_list(self, resource: Resource, params: dict[str, str], workers: int) -> Iterator[dict[str, Any]]:
        """Every object of the list, each once, in Piriod's order; pages ``workers`` at a time if more than 1."""
        with self._calling(resource.name) as call:
            yield from self._walk(resource, params, workers, call)

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The JSON of any GET on the configured host (a path), through the same funnel."""
        with self._calling(path) as call:
            return self._request_json(self._url(path), call, params)

    def write(self, method: str, path: str, body: bytes | None, what: str, *, once: bool | None = None) -> Any:
        """One write through the same funnel; its JSON answer, or None for an empty 2xx (a DELETE's 204).

        PATCH, PUT and DELETE set a state and are retried like reads. A POST (a create, an action), or any
        write sent with ``once`` (an action that is a DELETE, such as a subscription's cancel), is retried
        only if it never left whole or was refused (429); one that left and got no usable answer raises
        :class:`PiriodAmbiguousWriteError` at once, since resending it could do it twice.
        """
        with self._calling(what) as call:
            once = method == "POST" if once is None else once
            return self._request_json(self._url(path), call, method=method, body=body, once=once)

    # ------------------------------------------------------------------ the page walker

    def _walk(self, resource: Resource, params: dict[str, str], workers: int, call: Call) -> Iterator[dict[str, Any]]:
        _ = self._route  # built once here (with the session), not by racing worker threads
        walk = PageWalk(self.settings.base_url, resource.path, resource.label, self.settings.token)
        url = self._url(resource.path)
        page_size = int(params["page_size"])
        page: dict[str, Any] | None  # None once a page read in parallel is gone
        page = self._get_page(url, call, params)
        walk.mark_read(params)
        walk.first(page, page_size)
        assert walk.max_pages is not None  # set by first()
        call.expect(page["count"], walk.max_pages - EXTRA_PAGES)
        yield from self._fresh(walk, page, call)
        if workers > 1 and page.get("next"):
            numbers = range(2, pages_for(page["count"], page_size) + 1)
            with closing(self._pages_in_parallel(url, params, numbers, workers, call)) as pages:
                for number, page in zip(numbers, pages, strict=False):
                    if page is None:  # 404: the list got shorter, or the check below refuses it
                        walk.gone = number
                        break
                    walk.mark_read({**params, "page": str(number)})
                    new = self._fresh(walk, page, call)
                    yield from new
                    if not new:  # the list ended before its count said (an inflated count reads no further)
                        break
            call.stopped.clear()  # pages left unread on purpose: the requests that follow may retry again
        # follow `next` from the last page read: every page when sequential, or any that appeared
        # while pages were read in parallel (objects created meanwhile push items further)
        next_url = walk.next_url(page)
        while next_url:
            page = self._get_page(next_url, call)
            yield from self._fresh(walk, page, call)
            next_url = walk.next_url(page)
        if walk.short_of_count():
            walk.confirm_shorter(self._get_page(url, call, {**params, "page_size": "1"})["count"], self.log)
        walk.report(self.log)

    @staticmethod
    def _fresh(walk: PageWalk, page: dict[str, Any], call: Call) -> list[dict[str, Any]]:
        new = walk.fresh(page)
        call.advance(len(new), pages=1)
        return new

    def _pages_in_parallel(
        self, url: str, params: dict[str, str], numbers: range, workers: int, call: Call
    ) -> Generator[dict[str, Any] | None, None, None]:
        """Pages ``numbers`` fetched ``workers`` at a time, in order; None for a page that is gone (404)."""

        def fetch(number: int) -> dict[str, Any] | None:
            try:
                return self._get_page(url, call, {**params, "page": str(number)})
            except PiriodNotFoundError:
                return None

        return bounded_map(fetch, numbers, workers, "piriod-pages", call.stopped)

    # ------------------------------------------------------------------ the request funnel

    def _get_object(self, resource: Resource, object_id: str, call: Call) -> dict[str, Any]:
        path = resource.object_path(object_id)
        return check_requested_object(self._request_json(self._url(path), call), object_id, resource.label, path)

    def _get_page(self, url: str, call: Call, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return check_page(self._request_json(url, call, params), "GET", urlsplit(url).path)

    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    def _request_json(
        self,
        url: str,
        call: Call,
        params: Mapping[str, str] | None = None,
        *,
        method: str = "GET",
        body: bytes | None = None,
        once: bool = False,
    ) -> Any:
        """The one request funnel: throttle, one attempt at a time, and what to do after a failure."""
        failures = throttles = 0
        while True:
            round_ = self.throttle.acquire()
            try:
                if call.stopped.is_set():  # another request of this call failed while this one waited its turn
                    raise PiriodError(f"Piriod {method} {urlsplit(url).path}: not sent, the call already failed")
                call.sending()
                result = self._send_once(url, params, method, body, once)
            except (*TRANSIENT_ERRORS, PiriodConnectionSetupError) as exc:
                scrub(exc, self.settings.token)  # it is about to be logged
                throttled = isinstance(exc, PiriodRateLimitError)
                failures, throttles = failures + (not throttled), throttles + throttled
                try:
                    delay = call.wait_after(exc, failures, throttles, self.throttle.pace)
                except BaseException:
                    self.throttle.release(round_, throttled=throttled)
                    raise
                # the server asked everyone to wait, not just this worker
                asked_to_wait = throttled or getattr(exc, "retry_after", None) is not None
                self.throttle.release(round_, throttled=throttled, pause=delay if asked_to_wait else None)
                if call.stopped.wait(delay):  # the call failed elsewhere: no point retrying
                    raise
            except BaseException:
                self.throttle.release(round_)
                raise
            else:
                self.throttle.release(round_)
                call.succeeded()
                return result

    def _send_once(
        self, url: str, params: Mapping[str, str] | None, method: str, body: bytes | None, once: bool
    ) -> Any:
        """:meth:`_send`, with a write sent ``once`` that may have taken effect turned into
        :class:`PiriodAmbiguousWriteError`."""
        try:
            return self._send(url, params, method, body)
        except PiriodError as exc:
            if not once or not may_have_acted(exc):
                raise
            scrub(exc, self.settings.token)
            failure = PiriodAmbiguousWriteError(
                f"{exc}; the request had left, so Piriod may have acted on it: not sent again",
                status_code=exc.status_code,
                detail=exc.detail,
                method=method,
                path=urlsplit(url).path,
            )
        raise failure  # outside the except block: the cause, already in the message, is not chained

    def _send(self, url: str, params: Mapping[str, str] | None, method: str, payload: bytes | None) -> Any:
        """One attempt, bounded as a whole by the deadline: connect, send, status, headers, body, decode."""
        path = urlsplit(url).path
        timeout, secrets = self.settings.timeout, self.settings.token
        headers = {} if payload is None else {"Content-Type": "application/json"}
        failure: PiriodError | None = None
        with attempt_deadline(time.monotonic() + timeout) as attempt:
            try:
                answer = self._route.open(method, _with_query(url, params), payload, headers, timeout)
                try:
                    body = self._read_body(answer, method, path, attempt.deadline)
                finally:
                    _finish(answer)
            except PiriodError:
                if not attempt.expired:
                    raise
                failure = deadline_error(method, path, timeout)
            except _CLIENT_ERRORS as exc:
                if attempt.expired:
                    failure = deadline_error(method, path, timeout)
                else:
                    failure = network_error(
                        method, path, exc, secrets, base_url=self.settings.base_url, conn_id=self.settings.conn_id
                    )
            if failure is not None:
                # raised here, outside the except block: the client's own exception (which may quote what the
                # server sent, an echoed token too) is not kept as its __context__
                raise sent_or_not(failure, attempt.sent)
            if attempt.expired:  # the watchdog cut the body short
                raise deadline_error(method, path, timeout, answer.status, request_sent=True)
        if not body and method != "GET" and 200 <= answer.status < 300:
            return None  # a DELETE's 204
        return answer_json(method, path, answer.status, answer.reason or "", body, answer.headers, secrets)

    def _read_body(self, answer: Any, method: str, path: str, deadline: float) -> bytes:
        """Raw bytes as they arrive, decoded here within the size cap (never by a client library, unbounded)."""
        decoder = open_body(
            self.settings, answer.headers, status=answer.status, method=method, path=path, deadline=deadline
        )
        while True:
            decoder.budget.check_time()
            chunk = answer.read1(READ_STEP, decode_content=False)  # what has arrived, never waits for more
            if not chunk:
                return decoder.finish()
            decoder.feed(chunk)

    def _calling(self, what: str) -> AbstractContextManager[Call]:
        return one_call(self.settings, self.log, what, self._retry_delay, self.tally)


def sent_or_not(error: PiriodError, sent: bool) -> PiriodError:
    """``error`` marked with whether the whole request had left when its attempt failed."""
    network = error.as_network_error if isinstance(error, PiriodConnectionSetupError) else error
    if isinstance(network, PiriodNetworkError):
        network.request_sent = sent
    return error


def may_have_acted(exc: PiriodError) -> bool:
    """Whether Piriod may have carried out a request that failed this way: it left, and no refusal came back."""
    if isinstance(exc, PiriodNetworkError):
        return exc.request_sent
    if isinstance(exc, PiriodConnectionSetupError):
        return False  # nothing reached Piriod
    status = exc.status_code  # a 5xx, or a 2xx/3xx whose body could not be used; a 4xx is a refusal
    return status is None or not 400 <= status < 500


def _finish(answer: Any) -> None:
    """Give the connection back to its pool: as it is if the body was read to its end, else closed first."""
    if not answer.isclosed():
        answer.close()  # closes the connection too: what is left of the body must not reach the next request
    answer.release_conn()


def _with_query(url: str, params: Mapping[str, str] | None) -> str:
    """``url`` with ``params`` added to its query, encoded as requests encodes them."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, name: str, stop: threading.Event | None = None
) -> Generator[R, None, None]:
    """``fn`` over ``items`` in order, ``workers`` at a time, with at most ``2 * workers`` submitted ahead.

    The window is what makes "the first failure stops the rest" true: nothing beyond it is sent,
    what is queued in it is cancelled, and ``stop`` is set so requests waiting to retry give up,
    when a result raises or the consumer stops.
    """
    if workers == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        window: deque[Future[R]] = deque()
        queued = iter(items)
        try:
            window.extend(pool.submit(fn, item) for item in islice(queued, 2 * workers))
            while window:
                result = window.popleft().result()
                window.extend(pool.submit(fn, item) for item in islice(queued, 1))
                yield result
        finally:
            if window and stop is not None:
                stop.set()
            for future in window:
                future.cancel()
