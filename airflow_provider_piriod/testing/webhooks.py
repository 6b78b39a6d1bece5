"""Signed webhook deliveries, sent the way Piriod sends them (see the notes, section 6).

Register one webhook with the control API (``PUT /__emulator__/webhooks``)::

    {"url": "http://127.0.0.1:8001/hook", "secret": "whsecret_...", "events": ["payment.created"] or null,
     "retries": 3, "retry_delay": 0.5, "timeout": 6.0,
     "faults": {"bad_signature": false, "duplicate": false, "slow": 0}}

Only ``url`` and ``secret`` are required; ``events`` null (or missing) means every event. Then every
object created in the emulator's own workspace (either mode) - by the API (``POST /customers/`` ...),
by the control API's create, or by a scheduled create - is POSTed to ``url`` as
``{"event": "<object>.created", "object_id": "<id>"}`` (``json.dumps``, keys in that order) with
``x-piriod-signature`` = :func:`~airflow_provider_piriod.webhooks.signature.signature` of that payload.
Events: customer.created, payment.created, invoice.created, subscription.created.

Sending happens on the emulator's own event loop, in the background: an API answer never waits for
it. Deliveries go out one at a time in creation order (an event's retries come before the next event).
A 2xx is a success; any other status (3xx included), a timeout (``timeout`` seconds for the connection
and, once the body is sent, for the answer), a refused connection or a broken one is a failure, which
is retried up to ``retries`` more times ``retry_delay`` seconds apart. When the 3 most recent attempts
(across events) failed with the same code, the webhook is disabled: no more deliveries (events created
meanwhile are counted in ``missed``) until a new ``PUT``. Failure codes are the HTTP status, or
``"timeout"``, ``"refused"``, ``"error"``.

Faults: ``bad_signature`` sends a wrong (well-formed) signature, ``duplicate`` delivers every event
twice, ``slow: N`` trickles each body over N seconds. A slow or refusing receiver needs no fault: point
``url`` at one. ``GET`` answers the configuration, ``disabled``/``disabled_code``, ``pending``,
``missed`` and ``deliveries`` (one entry per attempt); ``DELETE`` unregisters (stops sending, pending
events dropped); ``POST /__emulator__/reset`` clears the deliveries log and the queue, keeping the webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_piriod.webhooks.signature import signature

SIGNATURE_HEADER = "x-piriod-signature"
EVENTS = {
    "customers": "customer.created",
    "payments": "payment.created",
    "invoices": "invoice.created",
    "subscriptions": "subscription.created",
}
DEFAULT_RETRIES = 3
DEFAULT_RETRY_DELAY = 0.5
DEFAULT_TIMEOUT = 6.0
DISABLE_AFTER = 3  # the same failing code on this many most recent attempts disables the webhook
FAULT_NAMES = ("bad_signature", "duplicate", "slow")
SLOW_STEPS = 20  # a slow body goes out in this many pieces
MAX_LOG = 10_000


@dataclass
class WebhookConfig:
    url: str
    secret: str
    events: list[str] | None = None
    retries: int = DEFAULT_RETRIES
    retry_delay: float = DEFAULT_RETRY_DELAY
    timeout: float = DEFAULT_TIMEOUT
    faults: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: Any) -> WebhookConfig:
        """The configuration a ``PUT`` body describes; ValueError naming what is wrong."""
        if not isinstance(payload, dict):
            raise ValueError("the webhook body must be a JSON object")
        unknown = set(payload) - {"url", "secret", "events", "retries", "retry_delay", "timeout", "faults"}
        if unknown:
            raise ValueError(f"unknown webhook settings: {', '.join(sorted(unknown))}")
        url, secret = payload.get("url"), payload.get("secret")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError("url must be an http:// or https:// URL")
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be a non-empty string (Piriod's start with whsecret_)")
        events = payload.get("events")
        if events is not None and (not isinstance(events, list) or any(e not in EVENTS.values() for e in events)):
            raise ValueError(f"events must be null or a list of {', '.join(EVENTS.values())}")
        faults = payload.get("faults") or {}
        if not isinstance(faults, dict) or set(faults) - set(FAULT_NAMES):
            raise ValueError(f"faults must be an object with keys among {', '.join(FAULT_NAMES)}")
        config = cls(
            url,
            secret,
            list(events) if events is not None else None,
            int(payload.get("retries", DEFAULT_RETRIES)),
            float(payload.get("retry_delay", DEFAULT_RETRY_DELAY)),
            float(payload.get("timeout", DEFAULT_TIMEOUT)),
            {"bad_signature": bool(faults.get("bad_signature")), "duplicate": bool(faults.get("duplicate"))}
            | {"slow": float(faults.get("slow") or 0)},
        )
        if config.retries < 0 or config.retry_delay < 0 or config.timeout <= 0 or config.faults["slow"] < 0:
            raise ValueError("retries and retry_delay must be >= 0, timeout > 0, faults.slow >= 0")
        return config


class Failed(Exception):
    """An attempt that got no answer; ``code`` is what it counts as ("timeout", "refused", "error")."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class WebhookSender:
    """One registered webhook, its queue of events and the log of every attempt."""

    def __init__(self) -> None:
        self.config: WebhookConfig | None = None
        self.disabled = False
        self.disabled_code: int | str | None = None
        self.missed = 0
        self.queue: deque[dict[str, str]] = deque()
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self._recent: deque[int | str | None] = deque(maxlen=DISABLE_AFTER)  # None: a success
        self._worker: asyncio.Task[None] | None = None
        self._number = 0

    # ------------------------------------------------------------------ control

    def configure(self, payload: Any) -> dict[str, Any]:
        """Register (or re-register, which re-enables) the webhook; pending events of the old one are dropped."""
        config = WebhookConfig.parse(payload)
        self._stop()
        self.config, self.disabled, self.disabled_code, self.missed = config, False, None, 0
        self._recent.clear()
        return self.describe()

    def remove(self) -> None:
        self._stop()
        self.config, self.disabled, self.disabled_code = None, False, None
        self._recent.clear()

    def reset(self) -> None:
        """Forget the deliveries log and pending events; the webhook stays registered (and enabled or not)."""
        self._stop()
        self.deliveries.clear()
        self.missed = 0

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {
            "url": config.url if config else None,
            "secret": config.secret if config else None,
            "events": config.events if config else None,
            "retries": config.retries if config else DEFAULT_RETRIES,
            "retry_delay": config.retry_delay if config else DEFAULT_RETRY_DELAY,
            "timeout": config.timeout if config else DEFAULT_TIMEOUT,
            "faults": dict(config.faults) if config else {},
            "registered": config is not None,
            "disabled": self.disabled,
            "disabled_code": self.disabled_code,
            "pending": len(self.queue),
            "missed": self.missed,
            "deliveries": list(self.deliveries),
        }

    def _stop(self) -> None:
        self.queue.clear()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None

    # ------------------------------------------------------------------ events

    def created(self, resource: str, object_id: Any) -> None:
        """An object was created: queue its event for delivery (never waits for the sending)."""
        config, event = self.config, EVENTS.get(resource)
        if config is None or event is None or (config.events is not None and event not in config.events):
            return
        if self.disabled:
            self.missed += 1
            return
        payload = {"event": event, "object_id": str(object_id)}
        self.queue.extend([payload, payload] if config.faults.get("duplicate") else [payload])
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no server loop (state used directly): sent once a loop exists and another event arrives
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(config), name="piriod-emulator-webhooks")

    async def _work(self, config: WebhookConfig) -> None:
        while self.queue and self.config is config and not self.disabled:
            payload = self.queue.popleft()
            self._number += 1
            await self._deliver(config, payload, self._number)
        if self.disabled:
            self.missed += len(self.queue)
            self.queue.clear()

    async def _deliver(self, config: WebhookConfig, payload: dict[str, str], number: int) -> None:
        """One event: the first attempt and its retries, until a 2xx or the webhook is disabled."""
        for attempt in range(1, config.retries + 2):
            if attempt > 1:
                await asyncio.sleep(config.retry_delay)
            entry = await self._attempt(config, payload, number, attempt)
            self.deliveries.append(entry)
            self._recent.append(None if entry["ok"] else entry["code"])
            if entry["ok"]:
                return
            codes = set(self._recent)
            if len(self._recent) == DISABLE_AFTER and len(codes) == 1 and None not in codes:
                self.disabled, self.disabled_code = True, entry["code"]
                return

    async def _attempt(
        self, config: WebhookConfig, payload: dict[str, str], number: int, attempt: int
    ) -> dict[str, Any]:
        body = json.dumps(payload).encode("utf-8")
        signed = signature(config.secret, payload)
        if config.faults.get("bad_signature"):
            signed = signature(config.secret + "-not-the-secret", payload)
        entry: dict[str, Any] = {
            "delivery": number,
            "attempt": attempt,
            "event": payload["event"],
            "object_id": payload["object_id"],
            "url": config.url,
            "body": body.decode("utf-8"),
            "signature": signed,
            "faults": [name for name in FAULT_NAMES if config.faults.get(name)],
            "time": time.time(),
            "status": None,
            "code": None,
            "ok": False,
            "error": None,
        }
        started = time.monotonic()
        try:
            status = await post(config.url, body, signed, config.timeout, float(config.faults.get("slow") or 0))
        except Failed as failed:
            entry.update(code=failed.code, error=str(failed))
        else:
            entry.update(status=status, code=status, ok=200 <= status < 300)
        entry["seconds"] = round(time.monotonic() - started, 4)
        return entry


async def post(url: str, body: bytes, signed: str, timeout: float, slow: float = 0.0) -> int:
    """POST ``body`` to ``url`` over a fresh connection and return the answer's status; Failed otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: Piriod-Webhooks (emulator)\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{SIGNATURE_HEADER}: {signed}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    context = ssl.create_default_context() if parts.scheme == "https" else None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    except asyncio.TimeoutError:
        raise Failed("timeout", f"no connection within {timeout} s") from None
    except ConnectionRefusedError as exc:
        raise Failed("refused", f"connection refused: {exc}") from None
    except OSError as exc:
        raise Failed("error", f"{type(exc).__name__}: {exc}") from None
    try:
        await _send(writer, head, body, slow)
        return await asyncio.wait_for(_read_status(reader), timeout)
    except asyncio.TimeoutError:
        raise Failed("timeout", f"no answer within {timeout} s") from None
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        raise Failed("error", f"{type(exc).__name__}: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _send(writer: asyncio.StreamWriter, head: bytes, body: bytes, slow: float) -> None:
    writer.write(head)
    if slow <= 0 or not body:
        writer.write(body)
        await writer.drain()
        return
    size = -(-len(body) // SLOW_STEPS)
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    for index, piece in enumerate(pieces):
        if index or len(pieces) == 1:  # the first piece at once, the last one `slow` seconds later
            await asyncio.sleep(slow / max(1, len(pieces) - 1))
        writer.write(piece)
        await writer.drain()


async def _read_status(reader: asyncio.StreamReader) -> int:
    """The status of the answer (headers read, the body left unread: the connection closes anyway)."""
    line = await reader.readline()
    while line.startswith(b"HTTP/1.1 100"):  # skip an interim 100 Continue and its blank line
        while (await reader.readline()).strip():
            pass
        line = await reader.readline()
    version, _, rest = line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {line[:80]!r}")
    return int(rest.split(" ", 1)[0])
