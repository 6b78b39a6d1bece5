"""The async transport behind PiriodAsyncHook (triggers): each attempt is :func:`.attempt.send` over the hook's
own urllib3 pools, in a thread of its own, so the event loop never blocks and both hooks read answers with the same
code: one deadline per attempt, the same framing checks, size cap, page walker and typed, scrubbed errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import PiriodConnectionSetupError, PiriodRateLimitError
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS, check_page, check_requested_object
from airflow_provider_piriod.redaction import scrub
from airflow_provider_piriod.resources import Resource
from airflow_provider_piriod.transport import attempt
from airflow_provider_piriod.transport.calls import Call, Funnel
from airflow_provider_piriod.transport.pages import PageWalk
from airflow_provider_piriod.transport.session import Route, build_session


class AsyncPiriodTransport(Funnel):
    """Requests to one Piriod workspace over the hook's own pools; open with ``async with``."""

    def __init__(self, settings: PiriodSettings, **funnel: Any) -> None:
        super().__init__(settings, **funnel)
        self._route: Route | None = None

    @property
    def server_date(self) -> str | None:
        """The Date header of the last answer: Piriod's own clock, for callers that must not trust the local one."""
        return self._route.server_date if self._route is not None else None

    async def __aenter__(self) -> AsyncPiriodTransport:
        # the environment's proxy and the CA bundle are read here: file reads, off the loop
        self._route = await asyncio.to_thread(lambda: Route(self.settings, build_session(self.settings)))
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._route is not None:
            self._route.manager.clear()
            self._route = None

    async def get_object(self, resource: Resource, object_id: str) -> dict[str, Any]:
        path = resource.object_path(object_id)
        with self._calling(resource.name) as call:
            data = await self._request_json(self._url(path), call)
            return check_requested_object(data, object_id, resource.label, path)

    async def count(self, resource: Resource, params: Mapping[str, str]) -> int:
        with self._calling(resource.name) as call:
            return (await self._get_page(self._url(resource.path), call, {**params, "page_size": "1"}))["count"]

    async def iter_list(self, resource: Resource, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every object of the list, each once, following ``next`` on the configured origin and path only."""
        with self._calling(resource.name) as call:
            walk = PageWalk(self.settings.base_url, resource.path, resource.label, self.settings.token, call)
            first = await self._get_page(self._url(resource.path), call, params)
            walk.first(first, params)
            page: dict[str, Any] | None = first  # None after the last page
            while page is not None:
                for item in walk.fresh(page):
                    yield item
                url = walk.next_url(page)
                page = await self._get_page(url, call) if url else None
            if walk.short_of_count():
                fresh = await self._get_page(self._url(resource.path), call, {**params, "page_size": "1"})
                walk.confirm_shorter(fresh["count"], self.log)
            walk.report(self.log)

    async def _get_page(self, url: str, call: Call, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return check_page(await self._request_json(url, call, params), "GET", urlsplit(url).path)

    async def _request_json(self, url: str, call: Call, params: Mapping[str, str] | None = None) -> Any:
        """The async request funnel: one bounded attempt at a time; after a failure, the call decides (see Call)."""
        route = self._route
        if route is None:
            raise RuntimeError("use PiriodAsyncHook as `async with PiriodAsyncHook(...) as hook:`")
        failures = throttles = 0
        while True:
            try:
                call.sending()
                result = await self._attempt(route, url, params)
            except (*TRANSIENT_ERRORS, PiriodConnectionSetupError) as exc:
                scrub(exc, self.settings.token)  # it is about to be logged
                throttled = isinstance(exc, PiriodRateLimitError)
                failures, throttles = failures + (not throttled), throttles + throttled
                await asyncio.sleep(call.wait_after(exc, failures, throttles))
            else:
                call.succeeded()
                return result

    async def _attempt(self, route: Route, url: str, params: Mapping[str, str] | None) -> Any:
        """One attempt, in a daemon thread of its own (a stalled one holds back no other call, nor the process's
        exit); when the coroutine awaiting it is cancelled, the attempt ends at once."""
        answer: Future[Any] = Future()
        cancelled, runs = threading.Event(), []

        def started(run: attempt.Attempt) -> None:
            runs.append(run)
            if cancelled.is_set():
                run.cancel()

        def work() -> None:
            if answer.set_running_or_notify_cancel():  # else cancelled before it began
                try:
                    answer.set_result(attempt.send(route, self.settings, "GET", url, params, None, started=started))
                except Exception as exc:
                    answer.set_exception(exc)

        threading.Thread(target=work, name="piriod-async", daemon=True).start()
        try:
            return await asyncio.wrap_future(answer)
        except asyncio.CancelledError:
            cancelled.set()
            for run in runs:
                run.cancel()
            raise
