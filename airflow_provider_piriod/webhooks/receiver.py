"""``POST /piriod/webhooks/{conn_id}``: check a Piriod delivery and turn it into an asset event.

Every refusal says as little as possible (a forger learns nothing from the answer): 413 for a body over
64 KiB, 408 for one that does not arrive within 5 s, 400 for anything that is not a Piriod delivery
(``{"event": "...", "object_id": "..."}``), and one identical 401 for a bad or missing signature, an
unknown connection, a connection of another type and a connection without ``webhook_secret``; the log
says which, without the secret or the signature. An authentic delivery gets a 2xx well inside Piriod's
6 s, whatever happens next (an event the registry cannot map is logged and acknowledged: three
non-2xx answers in a row make Piriod disable the webhook); one the metadata database fails to record
within 4 s gets a 503, so that Piriod sends it again. Nothing here calls Piriod.
"""

# no ``from __future__ import annotations``: FastAPI reads the route's annotations (``Request``) at runtime
import asyncio
import logging
import re
import time
from typing import Any

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.resources import resource_for_event
from airflow_provider_piriod.redaction import redact
from airflow_provider_piriod.webhooks.signature import is_authentic

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
BODY_SECONDS = 5.0
#: recording the event may take this long; after it the answer is a 503, inside Piriod's 6 s
RECORD_SECONDS = 4.0
SIGNATURE_HEADER = "x-piriod-signature"
_CONN_ID = re.compile(r"[A-Za-z0-9_.\-]{1,250}")
_EVENT = re.compile(r"[a-z][a-z0-9_]{0,40}\.[a-z][a-z0-9_.]{0,60}")
_LOOPBACK = ("127.", "::1", "localhost")
#: at most one WARNING per connection and reason in this many seconds: a flood of forgeries is not a flood of logs
LOG_EVERY = 60.0


class Refused(Exception):
    """A delivery refused with ``status``; ``reason`` is for the log only."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


_ANSWERS = {
    400: {"detail": "not a Piriod webhook delivery"},
    401: {"detail": "not accepted"},
    408: {"detail": "the body did not arrive in time"},
    413: {"detail": "body too large"},
    503: {"detail": "not recorded, send it again"},
}
_last_logged: dict[tuple[str, str], float] = {}


def create_app() -> Any:
    """The FastAPI app the plugin mounts under ``/piriod``: one route, no docs pages."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="Piriod webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/webhooks/{conn_id:path}")  # any path below, so that no conn id gets another answer than a 401
    async def receive(conn_id: str, request: Request) -> JSONResponse:
        try:
            outcome = await handle(conn_id, request)
        except Refused as refused:
            if refused.status != 503:  # a delivery not recorded was logged where it happened
                _log_refusal(conn_id, str(refused))
            return JSONResponse(_ANSWERS[refused.status], status_code=refused.status)
        return JSONResponse({"status": outcome}, status_code=200)

    return app


async def handle(conn_id: str, request: Any) -> str:
    """Check one delivery; what was done with it (recorded, a duplicate, ...), or raise Refused."""
    from starlette.concurrency import run_in_threadpool

    if not _CONN_ID.fullmatch(conn_id):
        raise Refused(401, "a connection id that cannot be an Airflow connection id")
    body = await read_body(request)
    event, object_id, payload = parse_delivery(body)
    settings = await run_in_threadpool(webhook_settings, conn_id)
    secret, unsigned = settings
    if not secret:
        client = request.client.host if request.client else ""
        if not (unsigned and client.startswith(_LOOPBACK)):
            raise Refused(
                401,
                "the connection has no webhook_secret extra: set it to the webhook's secret (whsecret_...) "
                "shown in Piriod",
            )
    elif not is_authentic(secret, payload, request.headers.get(SIGNATURE_HEADER)):
        raise Refused(401, f"a missing or wrong {SIGNATURE_HEADER}")
    resource = resource_for_event(event)
    if resource is None:
        log.warning("Piriod webhook on %r: event %r is not one this provider maps to a resource; acknowledged",
                    conn_id, event)  # fmt: skip
        return "ignored"
    from airflow_provider_piriod.webhooks import asset_events

    try:
        recording = run_in_threadpool(asset_events.record_delivery, conn_id, resource, event, object_id)
        outcome = await asyncio.wait_for(recording, RECORD_SECONDS)
    except Exception as exc:  # the metadata database is down or slow: a failure Piriod retries
        why = f"not recorded within {RECORD_SECONDS:g} s" if isinstance(exc, asyncio.TimeoutError) else "not recorded"
        detail = redact(f"{type(exc).__name__}: {str(exc)[:300]}", [secret] if secret else [])
        log.error("Piriod webhook on %r: %s %s %s (%s); answered 503 so that Piriod sends it again (a "
                  "recording that still lands makes the retry a duplicate)", conn_id, event, object_id, why,
                  detail)  # fmt: skip
        raise Refused(503, why) from None
    log.info("Piriod webhook on %r: %s %s: %s", conn_id, event, object_id, outcome)
    return outcome


async def read_body(request: Any) -> bytes:
    """The body, at most MAX_BODY_BYTES, arriving within BODY_SECONDS (a trickled body is cut off)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_BODY_BYTES):
        raise Refused(413, "a Content-Length over 64 KiB")
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise Refused(413, "a body over 64 KiB")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), BODY_SECONDS)
    except asyncio.TimeoutError:
        raise Refused(408, f"a body that took over {BODY_SECONDS:g} s") from None
    return b"".join(chunks)


def parse_delivery(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """``(event, object_id, payload)`` of a Piriod delivery, or Refused(400)."""
    try:
        payload = jsoncodec.loads(body)
    except ValueError:
        raise Refused(400, "a body that is not JSON") from None
    # event first, as Piriod sends it: the signature covers the values concatenated, and with the order free a
    # genuine signature would fit another body whose values concatenate alike
    if not isinstance(payload, dict) or list(payload) != ["event", "object_id"]:
        raise Refused(400, "a body that is not {event, object_id}")
    event, object_id = payload["event"], payload["object_id"]
    if not isinstance(event, str) or not _EVENT.fullmatch(event):
        raise Refused(400, "an event that is not a Piriod event name")
    if isinstance(object_id, int) and not isinstance(object_id, bool) and 0 <= object_id < 2**63:
        object_id = str(object_id)
    if not isinstance(object_id, str) or not object_id.isprintable() or not 0 < len(object_id) <= 200:
        raise Refused(400, "an object_id that is not an id")
    return event, object_id, payload


def webhook_settings(conn_id: str) -> tuple[str, bool]:
    """The connection's ``webhook_secret`` and ``allow_unsigned_webhooks``; Refused(401) if it is not a Piriod
    connection this API server can see."""
    from airflow_provider_piriod.compat import BaseHook, mask_secret
    from airflow_provider_piriod.connection import webhook_options

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        raise Refused(401, "a connection this API server does not know") from None
    if getattr(conn, "conn_type", None) != "piriod":
        raise Refused(401, "a connection that is not of type piriod")
    try:
        secret, unsigned = webhook_options(conn)
    except Exception:
        raise Refused(
            401, "a connection whose webhook extras cannot be read (webhook_secret must be a string)"
        ) from None
    if secret:
        mask_secret(secret)
    return secret, unsigned


def _log_refusal(conn_id: str, reason: str) -> None:
    known = _CONN_ID.fullmatch(conn_id) and "does not know" not in reason and "cannot be" not in reason
    key = (conn_id if known else "(unknown connections)", reason)
    now = time.monotonic()
    if now - _last_logged.get(key, -LOG_EVERY) < LOG_EVERY:
        return
    if len(_last_logged) > 1000:
        _last_logged.clear()
    _last_logged[key] = now
    log.warning("Piriod webhook on %r refused: %s", key[0], reason)
