"""Scripted faults: what each kind answers, and the byte-level senders for broken or slow bodies.

Faults live below what web frameworks expose (a connection dropped half-way through a body, a
body trickled byte by byte), which is why the emulator speaks ASGI directly. Every kind works on
any API path; list-page kinds change a real list page of whichever resource was asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from airflow_provider_piriod.testing.jsontext import loads
from airflow_provider_piriod.testing.responses import Response, json_response, start_message

FAULT_KINDS = (
    "status",  # answer with `status` (429 with Retry-After, 5xx with an HTML body, or any code)
    "drop",  # send half the body, then close the connection
    "slow_body",  # trickle the body one byte every `chunk_delay` s (gives up after `seconds`)
    "truncated_json",  # 200 with the first half of the real JSON, well framed
    "invalid_json",  # 200 with an HTML body
    "non_object",  # 200 with a JSON list instead of an object
    "missing_results",  # list page without its `results` key
    "next_host",  # list page whose `next` points at another host (`host`, default elsewhere.invalid)
    "next_scheme",  # list page whose `next` flips http <-> https
    "next_loop",  # list page whose `next` points back at the same page
    "redirect",  # 302 to the same path on another host (`host`, default elsewhere.invalid)
    "commit_then_drop",  # perform the request (a write is stored), then close the connection without a byte
    "commit_then_status",  # perform it, then answer `status` (default 502, an HTML body like `status`)
    "commit_then_slow",  # perform it, then hold the whole answer back `seconds` before sending it
)
REPLACING_KINDS = ("status", "invalid_json", "non_object", "redirect")  # answered without serving the request
COMMIT_KINDS = ("commit_then_drop", "commit_then_status", "commit_then_slow")  # served first, answer lost after
DEFAULT_STATUS = {"commit_then_status": 502}  # a status fault's default is 503
PAGE_KINDS = ("missing_results", "next_host", "next_scheme", "next_loop")
HTTP_TITLES = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class DropConnection(Exception):
    """Raised inside a response on purpose so uvicorn closes the socket mid-body."""


@dataclass
class Fault:
    kind: str
    path: str | None = None  # exact path, or a prefix when it ends with "*"
    query: str | None = None  # parameters the request must carry, e.g. "page=3"
    nth: int | None = None  # the Nth API request since start or reset (1-based)
    method: str | None = None  # only requests with this HTTP method (e.g. "POST"); None = any method
    times: int | None = 1  # how many requests it hits; None = every matching one
    status: int = 503
    retry_after: str | None = None  # Retry-After header value for status faults
    body: str | None = None  # body override for status faults
    chunk_delay: float = 0.2
    seconds: float = 30.0
    host: str = "elsewhere.invalid"  # where next_host and redirect faults point
    id: int = 0
    hits: int = 0

    def matches(self, number: int, path: str, query: str = "", method: str | None = None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and method is not None and self.method.upper() != method.upper():
            return False
        if self.nth is not None and number != self.nth:
            return False
        if self.query is not None and not set(parse_qsl(self.query)) <= set(parse_qsl(query)):
            return False
        if self.path is not None:
            if self.path.endswith("*"):
                return path.startswith(self.path[:-1])
            return path == self.path
        return True


def fault_response(fault: Fault, path: str, query: str) -> Response:
    """The answer of a fault that replaces the real one (see :data:`REPLACING_KINDS`)."""
    if fault.kind in ("status", "commit_then_status"):
        extra = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
        if fault.body is not None:
            return Response(fault.status, fault.body.encode(), extra, "text/plain")
        if fault.status == 429:
            return json_response(429, {"detail": "Request was throttled."}, extra)
        if fault.status >= 500:
            title = HTTP_TITLES.get(fault.status, "Error")
            html = f"<html><head><title>{fault.status} {title}</title></head><body><h1>{title}</h1></body></html>"
            return Response(fault.status, html.encode(), extra, "text/html")
        return json_response(fault.status, {"detail": "Injected fault."}, extra)
    if fault.kind == "invalid_json":
        return Response(200, b"<html><body>Maintenance</body></html>", [], "text/html")
    if fault.kind == "non_object":
        return json_response(200, ["not", "an", "object"])
    location = f"http://{fault.host}{path}" + (f"?{query}" if query else "")
    return json_response(302, {}, [("Location", location)])  # redirect


def rewrite(fault: Fault, response: Response, path: str, query: str, host: str) -> Response:
    """Faults that damage a real answer rather than replace it; money keeps its digits."""
    if fault.kind == "truncated_json":
        return Response(response.status, response.body[: max(1, len(response.body) // 2)], response.headers)
    if fault.kind in PAGE_KINDS and response.status == 200:
        page = loads(response.body)
        if not isinstance(page, dict):
            return response
        if fault.kind == "missing_results":
            page.pop("results", None)
        elif fault.kind == "next_loop":
            page["next"] = f"http://{host}{path}" + (f"?{query}" if query else "")
        elif page.get("next"):
            scheme, _, rest = page["next"].partition("://")
            if fault.kind == "next_scheme":
                page["next"] = f"{'https' if scheme == 'http' else 'http'}://{rest}"
            else:
                page["next"] = f"{scheme}://{fault.host}/{rest.partition('/')[2]}"
        return json_response(200, page)
    return response


async def send_dropped(send: Callable, response: Response) -> None:
    await send(start_message(response, len(response.body)))
    await send({"type": "http.response.body", "body": response.body[: len(response.body) // 2], "more_body": True})
    raise DropConnection("connection dropped on purpose by a 'drop' fault")


async def send_slowly(send: Callable, receive: Callable, response: Response, fault: Fault) -> None:
    """Trickle the body; stop when the client leaves or ``fault.seconds`` pass (then drop)."""
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await send(start_message(response, len(response.body)))
        stop = time.monotonic() + fault.seconds
        for index in range(len(response.body)):
            if gone.done() or time.monotonic() > stop:
                raise DropConnection("slow body abandoned")
            await send({"type": "http.response.body", "body": response.body[index : index + 1], "more_body": True})
            await asyncio.sleep(fault.chunk_delay)
        await send({"type": "http.response.body", "body": b""})
    finally:
        gone.cancel()


async def _wait_disconnect(receive: Callable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def hang_up(send: Callable, receive: Callable) -> None:
    """Close the connection without a byte of the answer (the request itself was served: a lost answer).

    uvicorn hands the app its per-request ``send``; the transport behind it is closed directly, since
    raising from the app would make uvicorn answer 500 instead of nothing.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise DropConnection("no transport to close")
    transport.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_wait_disconnect(receive), 5)


async def send_late(send: Callable, receive: Callable, response: Response, fault: Fault) -> None:
    """Hold the whole answer back ``fault.seconds``, then send it; nothing is sent when the client left first."""
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait({gone}, timeout=fault.seconds)
        if not gone.done():
            await send(start_message(response, len(response.body)))
            await send({"type": "http.response.body", "body": response.body})
    finally:
        gone.cancel()
