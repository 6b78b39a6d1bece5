"""The async transport behind PiriodAsyncHook (triggers): httpx, never a blocking call.

The same rules as the blocking transport, from the same modules: one deadline per attempt, the
size cap counted on decoded bytes as they are produced, the same page walker and ``next`` rules,
the same typed and scrubbed errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_piriod import __version__
from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import PiriodConnectionSetupError, PiriodRateLimitError
from airflow_provider_piriod import protocol
from airflow_provider_piriod.protocol import TRANSIENT_ERRORS
from airflow_provider_piriod.redaction import scrub
from airflow_provider_piriod.resources import Resource
from airflow_provider_piriod.transport.bodies import ACCEPT_ENCODING, open_body
from airflow_provider_piriod.transport.calls import Call, Tally, deadline_error, network_error, one_call
from airflow_provider_piriod.transport.pages import EXTRA_PAGES, PageWalk


class AsyncPiriodTransport:
    """Requests to one Piriod workspace over one httpx client; open with ``async with``."""

    def __init__(self, settings: PiriodSettings, *, log: Any, retry_delay: Callable[[int, Exception], float]) -> None:
        self.settings = settings
        self.log = log
        self._retry_delay = retry_delay
        self._client: Any = None
        #: requests, pages and retries of every call so far
        self.tally = Tally()
        #: the Date header of the last answer: Piriod's own clock, for callers that must not trust the local one
        self.server_date: str | None = None

    async def __aenter__(self) -> AsyncPiriodTransport:
        import httpx

        settings = self.settings
        self._client = httpx.AsyncClient(
            headers={
                **settings.headers,
                "Authorization": settings.authorization,
                "User-Agent": f"airflow-provider-piriod/{__version__}",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            # proxies from the environment, except for a plain-http API: the token would reach them in clear text
            trust_env=settings.base_url.startswith("https://") or settings.allow_insecure_http,
        )
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ what the hook asks for

    async def get_object(self, resource: Resource, object_id: str) -> dict[str, Any]:
        path = resource.object_path(object_id)
        with self._calling(resource.name) as call:
            data = await self._request_json(self._url(path), call)
            return protocol.check_requested_object(data, object_id, resource.label, path)

    async def count(self, resource: Resource, params: Mapping[str, str]) -> int:
        with self._calling(resource.name) as call:
            return (await self._get_page(self._url(resource.path), call, {**params, "page_size": "1"}))["count"]

    async def iter_list(self, resource: Resource, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every object of the list, each once, following ``next`` on the configured origin and path only."""
        with self._calling(resource.name) as call:
            walk = PageWalk(self.settings.base_url, resource.path, resource.label, self.settings.token)
            page: dict[str, Any] | None = await self._get_page(self._url(resource.path), call, params)
            walk.first(page, params)
            call.expect(page["count"], walk.max_pages - EXTRA_PAGES)
            while page is not None:
                new = walk.fresh(page)
                call.advance(len(new), pages=1)
                for item in new:
                    yield item
                url = walk.next_url(page)
                page = await self._get_page(url, call) if url else None
            if walk.short_of_count():
                fresh = await self._get_page(self._url(resource.path), call, {**params, "page_size": "1"})
                walk.confirm_shorter(fresh["count"], self.log)
            walk.report(self.log)

    # ------------------------------------------------------------------ the request funnel

    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    async def _get_page(self, url: str, call: Call, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return protocol.check_page(await self._request_json(url, call, params), "GET", urlsplit(url).path)

    async def _request_json(self, url: str, call: Call, params: Mapping[str, str] | None = None) -> Any:
        """The async request funnel: a deadline per attempt; after a failure, the call decides (see Call)."""
        failures = throttles = 0
        while True:
            try:
                call.sending()
                result = await self._send(url, params)
            except (*TRANSIENT_ERRORS, PiriodConnectionSetupError) as exc:
                scrub(exc, self.settings.token)  # it is about to be logged
                throttled = isinstance(exc, PiriodRateLimitError)
                failures, throttles = failures + (not throttled), throttles + throttled
                await asyncio.sleep(call.wait_after(exc, failures, throttles))
            else:
                call.succeeded()
                return result

    async def _send(self, url: str, params: Mapping[str, str] | None) -> Any:
        import httpx

        if self._client is None:
            raise RuntimeError("use PiriodAsyncHook as `async with PiriodAsyncHook(...) as hook:`")
        method, path = "GET", urlsplit(url).path
        timeout, secrets = self.settings.timeout, self.settings.token
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                status, reason, headers, body = await self._read(url, params, method, path, deadline)
        except TimeoutError:
            raise deadline_error(method, path, timeout) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            raise network_error(
                method, path, exc, secrets, base_url=self.settings.base_url, conn_id=self.settings.conn_id
            ) from None
        # decoding a large body is CPU work: off the event loop every deferred task shares
        return await asyncio.to_thread(protocol.answer_json, method, path, status, reason, body, headers, secrets)

    async def _read(self, url: str, params: Mapping[str, str] | None, method: str, path: str, deadline: float):
        async with self._client.stream(method, url, params=params) as response:
            decoder = open_body(
                self.settings,
                response.headers,
                status=response.status_code,
                method=method,
                path=path,
                deadline=deadline,
            )
            async for chunk in response.aiter_raw():  # raw: httpx would decode whole chunks, unbounded
                decoder.feed(chunk)
            self.server_date = response.headers.get("date")
            return response.status_code, response.reason_phrase, response.headers, decoder.finish()

    def _calling(self, what: str) -> AbstractContextManager[Call]:
        return one_call(self.settings, self.log, what, self._retry_delay, self.tally)
