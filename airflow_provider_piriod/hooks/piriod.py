"""PiriodHook: credentials, a pooled session and one hardened request path to the Piriod API."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from functools import cached_property
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from airflow_provider_piriod import __version__
from airflow_provider_piriod.compat import BaseHook, amask_secret, mask_secret
from airflow_provider_piriod.connection import PiriodSettings, settings_from_connection
from airflow_provider_piriod.exceptions import (
    PiriodNetworkError,
    PiriodNotFoundError,
    PiriodRateLimitError,
    PiriodResponseError,
)
from airflow_provider_piriod.models import Customer
from airflow_provider_piriod.protocol import (
    CUSTOMERS_PATH,
    BodyBudget,
    MAX_WORKERS,
    TRANSIENT_ERRORS,
    check_object,
    check_page,
    customer_path,
    decode_json,
    error_from_response,
    filter_params,
    next_page_url,
    redact,
    retry_delay,
    validate_customer_ids,
    validate_max_workers,
    validate_page_size,
)

class _TokenAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Token ...`` at send time (and stops requests from reading ~/.netrc)."""

    def __init__(self, authorization: str) -> None:
        self._authorization = authorization

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._authorization
        return request

    def __repr__(self) -> str:
        return "<TokenAuth ***>"


def _connection_type_info() -> dict[str, Any]:
    from airflow_provider_piriod import get_provider_info

    (info,) = get_provider_info()["connection-types"]
    return info


class _Throttle:
    """
    Shared by every worker of one hook: how fast, and how many at once, requests may go out.

    * A ``Retry-After`` pauses all workers, not just the one that was told.
    * The number of requests in flight starts at 4 and grows by one per success (doubling every
      round trip) up to ``max_workers``, as TCP slow start does. A 429 halves it (once per burst of
      429s); from then on each success adds ``1/limit``, about one slot per round trip.
    * A 429 also starts pacing: request starts are spaced at the rate Piriod accepted over the last
      second; each success then shortens the gap by 1 % to find out whether more is allowed.

    A rate-limited Piriod therefore sees the hook settle just under the rate it allows, instead of
    every worker retrying into the limit.
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


class _PageWalk:
    """Bookkeeping for following ``next``: origin check, loop detection, and ids already yielded.

    Piriod pages by offset, so a customer created during a scan shifts later pages by one and
    repeats an item; repeats are skipped (and counted) so every customer is yielded once.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.seen_pages: set[str] = set()
        self.seen_ids: set[str] = set()
        self.duplicates = 0

    def fresh(self, results: list[Any], path: str) -> Iterator[dict[str, Any]]:
        for item in results:
            customer = check_object(item, "GET", path)
            customer_id = customer.get("id")
            if customer_id in self.seen_ids:
                self.duplicates += 1
                continue
            if customer_id is not None:
                self.seen_ids.add(customer_id)
            yield customer

    def next_url(self, page: dict[str, Any], path: str) -> str | None:
        if not page.get("next"):
            return None
        url = next_page_url(page["next"], self.base_url, "GET", path)
        if url in self.seen_pages:
            raise PiriodResponseError(f"Piriod GET {path}: 'next' points back to a page already read ({url})")
        self.seen_pages.add(url)
        return url

    def report(self, log: Any) -> None:
        if self.duplicates:
            log.warning(
                "Skipped %d customers already returned by an earlier page (pages shifted while reading, "
                "usually because customers were created during the scan)", self.duplicates
            )


class _PiriodHookBase(BaseHook):
    """What the sync hook and its async twin share: the connection, its overrides and the backoff timing."""

    conn_name_attr = "piriod_conn_id"
    default_conn_name = "piriod_default"
    conn_type = "piriod"
    hook_name = "Piriod"

    #: first backoff step in seconds; doubles per attempt, with jitter
    retry_base_delay: float = 0.5
    #: longest backoff step in seconds
    retry_max_delay: float = 30.0
    #: longest wait a ``Retry-After`` header can impose, in seconds
    retry_after_max: float = 60.0

    def __init__(
        self,
        piriod_conn_id: str = default_conn_name,
        *,
        test_mode: bool | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__()
        self.piriod_conn_id = piriod_conn_id
        self._overrides = {"test_mode": test_mode, "timeout": timeout, "max_retries": max_retries}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(piriod_conn_id={self.piriod_conn_id!r})"

    def _settings_from(self, conn: Any) -> PiriodSettings:
        return settings_from_connection(conn, **self._overrides)

    def _retry_delay(self, attempt: int, exc: Exception) -> float:
        return retry_delay(
            attempt,
            base=self.retry_base_delay,
            cap=self.retry_max_delay,
            retry_after=getattr(exc, "retry_after", None),
            retry_after_cap=self.retry_after_max,
        )


class PiriodHook(_PiriodHookBase):
    """
    Talk to the Piriod API with the token and workspace of an Airflow connection.

    Nothing is looked up or sent until a method is called. Every request goes through
    :meth:`_request_json`: per-request deadline, retries with backoff on transient failures,
    typed errors.

    :param piriod_conn_id: Airflow connection of type ``piriod``.
    :param test_mode: override the connection's ``test_mode`` extra.
    :param timeout: override the connection's per-request deadline, in seconds.
    :param max_retries: override the connection's retry count for transient failures.
    """

    def __init__(
        self,
        piriod_conn_id: str = _PiriodHookBase.default_conn_name,
        *,
        test_mode: bool | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(piriod_conn_id, test_mode=test_mode, timeout=timeout, max_retries=max_retries)
        self._throttle = _Throttle()

    # ------------------------------------------------------------------ connection form (Airflow 2.x UI)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields for UIs that ask the hook (Airflow 2.x).

        Airflow 3 reads the same from the provider info, the single source of both.
        """
        behaviour = _connection_type_info()["ui-field-behaviour"]
        return {"hidden_fields": list(behaviour["hidden-fields"]), "relabeling": dict(behaviour["relabeling"]),
                "placeholders": dict(behaviour["placeholders"])}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields for UIs that ask the hook (Airflow 2.x); UI imports stay in here."""
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        widgets: dict[str, Any] = {}
        for name, field in _connection_type_info()["conn-fields"].items():
            schema = field["schema"]
            kinds = schema["type"]
            label, description, default = lazy_gettext(field["label"]), field.get("description"), schema.get("default")
            if "boolean" in kinds:
                widgets[name] = BooleanField(label, description=description, default=default)
            elif "integer" in kinds:
                widgets[name] = IntegerField(label, description=description, default=default,
                                             validators=[Optional(), NumberRange(min=schema.get("minimum"))])
            else:
                widgets[name] = StringField(label, description=description, default=str(default))
        return widgets

    # ------------------------------------------------------------------ connection and session

    @cached_property
    def settings(self) -> PiriodSettings:
        """The validated connection (fetched once); the token is masked in Airflow's logs from here on."""
        settings = self._settings_from(self.get_connection(self.piriod_conn_id))
        mask_secret(settings.token)
        return settings

    @cached_property
    def _session(self) -> requests.Session:
        settings = self.settings
        session = requests.Session()
        session.headers.update(settings.headers)
        session.headers["User-Agent"] = f"airflow-provider-piriod/{__version__}"
        session.auth = _TokenAuth(settings.authorization)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=MAX_WORKERS, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def get_conn(self) -> requests.Session:
        """The pooled session with Piriod's headers set; built once per hook."""
        return self._session

    # ------------------------------------------------------------------ public API

    def get_customer(self, customer_id: str) -> Customer:
        """Retrieve one customer; raises PiriodNotFoundError if it does not exist in this workspace and mode."""
        path = customer_path(customer_id)
        return Customer.from_json(check_object(self._request_json(self._url(path)), "GET", path))

    def get_customers(
        self,
        customer_ids: list[str],
        *,
        max_workers: int = 8,
        ignore_missing: bool = False,
    ) -> list[Customer]:
        """
        Retrieve many customers concurrently over one pooled session, in input order.

        Every id is checked before the first request. A repeated id is fetched once and returned
        at each of its positions. With ``ignore_missing`` unknown ids are left out; otherwise the
        first failure stops the remaining requests and is raised.
        """
        ids = validate_customer_ids(customer_ids)
        workers = validate_max_workers(max_workers)
        unique = list(dict.fromkeys(ids))
        found = self._fetch_all(unique, workers, ignore_missing)
        return [found[customer_id] for customer_id in ids if customer_id in found]

    def iter_customers(
        self, filters: Mapping[str, Any] | None = None, *, page_size: int = 100, max_workers: int = 1
    ) -> Iterator[Customer]:
        """
        Yield every customer matching ``filters``, in Piriod's order, each once.

        With ``max_workers=1`` (the default) pages are read one after another by following
        ``next``. With more, the first page's ``count`` tells how many pages there are and up to
        ``max_workers`` of them are fetched at once over the pooled session; they are still yielded
        in order, and at most ``max_workers`` pages are held in memory.
        """
        return (Customer.from_json(item) for item in self.iter_customer_json(
            filters, page_size=page_size, max_workers=max_workers))

    def iter_customer_json(
        self, filters: Mapping[str, Any] | None = None, *, page_size: int = 100, max_workers: int = 1
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`iter_customers`, but the JSON objects as Piriod sent them, without building models.

        The fastest way to export customers (what the operator streams to XCom and files).
        """
        params = {**filter_params(filters), "page_size": str(validate_page_size(page_size))}
        return self._iter_json(params, validate_max_workers(max_workers))

    def list_customers(self, filters: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Customer]:
        """All customers matching ``filters`` as a list (see :meth:`iter_customers`)."""
        return list(self.iter_customers(filters, **kwargs))

    def count_customers(self, filters: Mapping[str, Any] | None = None) -> int:
        """How many customers match ``filters``, in one small request."""
        params = {**filter_params(filters), "page_size": "1"}
        return check_page(self._request_json(self._url(CUSTOMERS_PATH), params), "GET", CUSTOMERS_PATH)["count"]

    def test_connection(self) -> tuple[bool, str]:
        """Read-only check used by the UI's Test button and ``airflow connections test``."""
        try:
            count = self.count_customers()
        except Exception as exc:  # the UI wants a message, not a traceback
            return False, redact(str(exc), self._token_or_empty())
        settings = self.settings
        mode = "test mode" if settings.test_mode else "live mode"
        return True, (
            f"Connected to Piriod at {settings.base_url} as workspace {settings.workspace} "
            f"({mode}): {count} customers visible."
        )

    # ------------------------------------------------------------------ internals

    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    def _iter_json(self, params: dict[str, str], workers: int) -> Iterator[dict[str, Any]]:
        pages = _PageWalk(self.settings.base_url)
        url = self._url(CUSTOMERS_PATH)
        page = check_page(self._request_json(url, params), "GET", CUSTOMERS_PATH)
        for item in pages.fresh(page["results"], CUSTOMERS_PATH):
            yield item
        if workers > 1 and page.get("next"):
            page_size = int(params["page_size"])
            last_page = -(-page["count"] // page_size)
            for number, page in self._pages_in_parallel(url, params, range(2, last_page + 1), workers):
                if page is None:
                    self._confirm_list_ends_before(number, params, page_size)
                    break
                for item in pages.fresh(page["results"], CUSTOMERS_PATH):
                    yield item
        # follow `next` from the last page read: all of them sequentially, or any that appeared
        # while the parallel pages were read (customers created meanwhile push items further)
        next_url = pages.next_url(page, CUSTOMERS_PATH) if page is not None else None
        while next_url:
            path = urlsplit(next_url).path
            page = check_page(self._request_json(next_url), "GET", path)  # next links carry the query
            for item in pages.fresh(page["results"], path):
                yield item
            next_url = pages.next_url(page, path)
        pages.report(self.log)

    def _confirm_list_ends_before(self, number: int, params: dict[str, str], page_size: int) -> None:
        """Page ``number`` answered 404: fine if a fresh count agrees the list got shorter, else an error."""
        query = {**params, "page_size": "1"}
        count = check_page(self._request_json(self._url(CUSTOMERS_PATH), query), "GET", CUSTOMERS_PATH)["count"]
        if count > (number - 1) * page_size:
            raise PiriodResponseError(
                f"Piriod GET {CUSTOMERS_PATH}: page {number} answered 404 although {count} customers match "
                f"at {page_size} per page; refusing to return a partial list"
            )
        self.log.info("Piriod's list shrank to %d customers while it was read; it ends before page %d", count, number)

    def _pages_in_parallel(
        self, url: str, params: dict[str, str], numbers: range, workers: int
    ) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """``(number, page)`` for pages fetched ``workers`` at a time, in order; page None if it is gone (404)."""

        def fetch(number: int) -> dict[str, Any] | None:
            try:
                return check_page(self._request_json(url, {**params, "page": str(number)}), "GET", CUSTOMERS_PATH)
            except PiriodNotFoundError:
                return None

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="piriod-pages") as pool:
            window: deque = deque()
            queued = iter(numbers)
            try:
                for number in islice(queued, workers):
                    window.append((number, pool.submit(fetch, number)))
                while window:
                    number, future = window.popleft()
                    page = future.result()
                    for later in islice(queued, 1):
                        window.append((later, pool.submit(fetch, later)))
                    yield number, page
            finally:
                for _, future in window:
                    future.cancel()

    def _fetch_all(self, ids: list[str], workers: int, ignore_missing: bool) -> dict[str, Customer]:
        def fetch(customer_id: str) -> Customer | None:
            try:
                return self.get_customer(customer_id)
            except PiriodNotFoundError:
                if ignore_missing:
                    return None
                raise

        if workers == 1 or len(ids) <= 1:
            results = [fetch(customer_id) for customer_id in ids]
        else:
            self.get_conn()  # build settings and session once, before the threads share them
            with ThreadPoolExecutor(max_workers=min(workers, len(ids)), thread_name_prefix="piriod") as pool:
                futures = [pool.submit(fetch, customer_id) for customer_id in ids]
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                failed = [future for future in futures if future in done and future.exception()]
                if failed:
                    for future in pending:
                        future.cancel()
                    raise failed[0].exception()
                results = [future.result() for future in futures]
        return {customer.id: customer for customer in results if customer is not None}

    def _request_json(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        """The one request funnel: GET with deadline, retries on transient failures, typed errors."""
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            round_ = self._throttle.acquire()
            try:
                result = self._send(url, params)
            except TRANSIENT_ERRORS as exc:
                throttled = isinstance(exc, PiriodRateLimitError)
                asked_to_wait = throttled or getattr(exc, "retry_after", None) is not None
                delay = self._retry_delay(attempt, exc)
                # the server asked everyone to wait, not just this worker
                self._throttle.release(round_, throttled=throttled, pause=delay if asked_to_wait else None)
                if attempt == attempts:
                    raise
                self.log.warning(
                    "Piriod request attempt %d of %d failed (%s); retrying in %.2f s", attempt, attempts, exc, delay
                )
                time.sleep(delay)
            except BaseException:
                self._throttle.release(round_)
                raise
            else:
                self._throttle.release(round_)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, url: str, params: Mapping[str, str] | None) -> Any:
        """One attempt: send, read the body within the deadline and size cap, decode or raise."""
        method, path = "GET", urlsplit(url).path
        timeout = self.settings.timeout
        deadline = time.monotonic() + timeout
        try:
            response = self.get_conn().get(
                url, params=params, timeout=(timeout, timeout), allow_redirects=False, stream=True
            )
            with response:
                body = self._read_body(response, deadline, method, path)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise PiriodNetworkError(
                redact(f"Piriod {method} {path} failed before a complete answer arrived: {type(exc).__name__}: {exc}",
                       self.settings.token),
                method=method,
                path=path,
            ) from None
        token = self.settings.token
        if not 200 <= response.status_code < 300:
            raise error_from_response(
                method, path, response.status_code, response.reason or "", body, response.headers, token
            )
        return decode_json(body, method, path, response.status_code, token)

    def _read_body(self, response: requests.Response, deadline: float, method: str, path: str) -> bytes:
        """Read without trusting the server: stop at the total deadline or the size cap, whichever first."""
        budget = BodyBudget(limit=self.settings.max_response_bytes, timeout=self.settings.timeout, deadline=deadline,
                            method=method, path=path, status=response.status_code)
        budget.check_declared(response.headers.get("Content-Length"))
        chunks: list[bytes] = []
        while True:
            budget.check_time()
            chunk = response.raw.read1(65536, decode_content=True)  # returns what has arrived, never waits for 64 KiB
            if not chunk:
                return b"".join(chunks)
            budget.add(chunk)
            chunks.append(chunk)

    def _token_or_empty(self) -> str:
        try:
            return self.settings.token
        except Exception:
            return ""


class PiriodAsyncHook(_PiriodHookBase):
    """
    Async twin of :class:`PiriodHook` for triggers: httpx, never a blocking call.

    Same connection parsing, retry and backoff rules, deadline, size cap and typed errors as the
    sync hook; methods return the JSON Piriod sent. Use it as an async context manager::

        async with PiriodAsyncHook("piriod_default") as hook:
            customer = await hook.get_customer_json("cus_...")
    """

    hook_name = "Piriod (async)"

    def __init__(
        self,
        piriod_conn_id: str = _PiriodHookBase.default_conn_name,
        *,
        test_mode: bool | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(piriod_conn_id, test_mode=test_mode, timeout=timeout, max_retries=max_retries)
        self._settings: PiriodSettings | None = None
        self._client = None

    async def get_settings(self) -> PiriodSettings:
        """The validated connection, fetched the Airflow 3 async way (once per hook)."""
        if self._settings is None:
            settings = self._settings_from(await self._aget_connection())
            await amask_secret(settings.token)
            self._settings = settings
        return self._settings

    async def _aget_connection(self) -> Any:
        """Airflow 3's async lookup; on 2.11, the sync one in a worker thread (the loop stays free)."""
        aget_connection = getattr(self, "aget_connection", None)
        if aget_connection is not None:
            return await aget_connection(self.piriod_conn_id)
        return await asyncio.to_thread(self.get_connection, self.piriod_conn_id)

    async def __aenter__(self) -> PiriodAsyncHook:
        import httpx

        settings = await self.get_settings()
        self._client = httpx.AsyncClient(
            headers={**settings.headers, "Authorization": settings.authorization,
                     "User-Agent": f"airflow-provider-piriod/{__version__}"},
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_customer_json(self, customer_id: str) -> dict[str, Any]:
        path = customer_path(customer_id)
        return check_object(await self._request_json(path), "GET", path)

    async def count_customers(self, filters: Mapping[str, Any] | None = None) -> int:
        params = {**filter_params(filters), "page_size": "1"}
        return check_page(await self._request_json(CUSTOMERS_PATH, params), "GET", CUSTOMERS_PATH)["count"]

    async def iter_customer_json(
        self, filters: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching customer, following ``next`` on the configured origin only."""
        settings = await self.get_settings()
        query: dict[str, str] | None = {**filter_params(filters), "page_size": str(validate_page_size(page_size))}
        url: str | None = f"{settings.base_url}{CUSTOMERS_PATH}"
        pages = _PageWalk(settings.base_url)
        while url:
            path = urlsplit(url).path
            page = check_page(await self._request_json(url, query), "GET", path)
            for item in pages.fresh(page["results"], path):
                yield item
            url = pages.next_url(page, path)
            query = None
        pages.report(self.log)

    async def _request_json(self, path_or_url: str, params: Mapping[str, str] | None = None) -> Any:
        """The async request funnel: deadline, retries with backoff on transient failures, typed errors."""
        settings = await self.get_settings()
        url = path_or_url if "://" in path_or_url else f"{settings.base_url}{path_or_url}"
        attempts = settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._send(url, params)
            except TRANSIENT_ERRORS as exc:
                if attempt == attempts:
                    raise
                delay = self._retry_delay(attempt, exc)
                self.log.warning(
                    "Piriod request attempt %d of %d failed (%s); retrying in %.2f s", attempt, attempts, exc, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, url: str, params: Mapping[str, str] | None) -> Any:
        import httpx

        if self._client is None:
            raise RuntimeError("use PiriodAsyncHook as `async with PiriodAsyncHook(...) as hook:`")
        settings = await self.get_settings()
        method, path = "GET", urlsplit(url).path
        try:
            status, reason, headers, body = await asyncio.wait_for(
                self._read(url, params, method, path), timeout=settings.timeout
            )
        except asyncio.TimeoutError:
            raise PiriodNetworkError(
                f"Piriod {method} {path}: answer not complete within the {settings.timeout:g} s deadline",
                method=method, path=path,
            ) from None
        except httpx.HTTPError as exc:
            raise PiriodNetworkError(
                redact(f"Piriod {method} {path} failed before a complete answer arrived: {type(exc).__name__}: {exc}",
                       settings.token),
                method=method, path=path,
            ) from None
        if not 200 <= status < 300:
            raise error_from_response(method, path, status, reason, body, headers, settings.token)
        return decode_json(body, method, path, status, settings.token)

    async def _read(self, url: str, params: Mapping[str, str] | None, method: str, path: str):
        settings = await self.get_settings()
        async with self._client.stream(method, url, params=params) as response:
            budget = BodyBudget(limit=settings.max_response_bytes, timeout=settings.timeout,
                                deadline=time.monotonic() + settings.timeout, method=method, path=path,
                                status=response.status_code)
            budget.check_declared(response.headers.get("content-length"))
            chunks = []
            async for chunk in response.aiter_bytes():
                budget.add(chunk)
                chunks.append(chunk)
            return response.status_code, response.reason_phrase, response.headers, b"".join(chunks)
