"""The blocking transport behind PiriodHook: one request funnel and one page walker, over urllib3's pools.

It owns the whole cycle of a hook call (throttle, one bounded attempt at a time, retries, ``next`` links)
and hands back checked JSON objects; every error leaving it has been scrubbed of the token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from airflow_provider_piriod.concurrency import bounded_map
from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodConnectionSetupError,
    PiriodError,
    PiriodNotFoundError,
    PiriodRateLimitError,
)
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS, check_page, check_requested_object
from airflow_provider_piriod.redaction import scrub
from airflow_provider_piriod.resources import Resource
from airflow_provider_piriod.transport import attempt
from airflow_provider_piriod.transport.calls import Call, Funnel, may_have_acted
from airflow_provider_piriod.transport.pages import PageWalk, pages_for
from airflow_provider_piriod.transport.session import Route, build_session
from airflow_provider_piriod.transport.throttle import Throttle

T = TypeVar("T")


class PiriodTransport(Funnel):
    """Requests to one Piriod workspace for one hook; thread-safe, so pages and ids can be fetched at once."""

    def __init__(self, settings: PiriodSettings, *, throttle: Throttle, **funnel: Any) -> None:
        super().__init__(settings, **funnel)
        self.throttle = throttle

    @cached_property
    def session(self) -> requests.Session:
        """The pooled session (``get_conn()``): the headers, token, proxy and CA bundle requests go out with."""
        return build_session(self.settings)

    @cached_property
    def _route(self) -> Route:
        """urllib3's pools for the configured origin, built from the session as the first request goes out."""
        return Route(self.settings, self.session)

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
        """Objects by id, ``workers`` at a time; the first failure stops the rest. Each is passed through
        ``convert`` (the hook's model) here, in order, so building models never delays a worker's next request."""

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
            # closed as soon as anything fails here, a model included: the window's requests stop at once
            with closing(bounded_map(fetch, object_ids, workers, "piriod", call.stopped)) as fetched:
                found = zip(object_ids, fetched, strict=True)
                return {object_id: convert(obj) for object_id, obj in found if obj is not None}

    def count(self, resource: Resource, params: Mapping[str, str]) -> int:
        with self._calling(resource.name) as call:
            return self._get_page(self._url(resource.path), call, {**params, "page_size": "1"})["count"]

    def write(self, method: str, path: str, body: bytes | None, what: str, *, once: bool | None = None) -> Any:
        """One write through the same funnel; its JSON answer, or None for an empty 2xx (a DELETE's 204).

        PATCH, PUT and DELETE are retried like reads. A POST, or a write sent ``once`` (a subscription's cancel,
        a DELETE), is retried only if it never left whole or was refused (429); one that left and got no usable
        answer raises :class:`PiriodAmbiguousWriteError` at once: resending it could do it twice.
        """
        with self._calling(what) as call:
            once = method == "POST" if once is None else once
            return self._request_json(self._url(path), call, method=method, body=body, once=once)

    def iter_list(self, resource: Resource, params: dict[str, str], workers: int) -> Iterator[dict[str, Any]]:
        """Every object of the list, each once, in Piriod's order; pages ``workers`` at a time if more than 1."""
        with self._calling(resource.name) as call:
            _ = self._route  # built once here (with the session), not by racing worker threads
            walk = PageWalk(self.settings.base_url, resource.path, resource.label, self.settings.token, call)
            url = self._url(resource.path)
            first = self._get_page(url, call, params)
            walk.first(first, params)
            yield from walk.fresh(first)
            page: dict[str, Any] | None = first  # None once a page read in parallel is gone
            if workers > 1 and first.get("next"):

                def fetch(number: int) -> dict[str, Any] | None:  # None for a page that is gone (404)
                    try:
                        return self._get_page(url, call, {**params, "page": str(number)})
                    except PiriodNotFoundError:
                        return None

                numbers = range(2, pages_for(first["count"], int(params["page_size"])) + 1)
                with closing(bounded_map(fetch, numbers, workers, "piriod-pages", call.stopped)) as pages:
                    for number, page in zip(numbers, pages, strict=False):
                        if page is None:  # 404: the list got shorter, or the check below refuses it
                            walk.gone = number
                            break
                        walk.mark_read({**params, "page": str(number)})
                        new = walk.fresh(page)
                        yield from new
                        if not new:  # the list ended before its count said (an inflated count reads no further)
                            break
                call.stopped.clear()  # pages left unread on purpose: the requests that follow may retry again
            # `next` from the last page read: every page when sequential, else any pushed further while reading
            while next_url := walk.next_url(page):
                page = self._get_page(next_url, call)
                yield from walk.fresh(page)
            if walk.short_of_count():
                walk.confirm_shorter(self._get_page(url, call, {**params, "page_size": "1"})["count"], self.log)
            walk.report(self.log)

    def _get_object(self, resource: Resource, object_id: str, call: Call) -> dict[str, Any]:
        path = resource.object_path(object_id)
        return check_requested_object(self._request_json(self._url(path), call), object_id, resource.label, path)

    def _get_page(self, url: str, call: Call, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return check_page(self._request_json(url, call, params), "GET", urlsplit(url).path)

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
        """One attempt; a failed write sent ``once`` that may have taken effect is a PiriodAmbiguousWriteError."""
        try:
            return attempt.send(self._route, self.settings, method, url, params, body)
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
