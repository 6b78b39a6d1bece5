"""Run the Piriod emulator on loopback and control it: :class:`PiriodEmulator`."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    import uvicorn

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_READY_LINE = re.compile(r"listening on (http://\S+)")


class _HideDeliberateDrops(logging.Filter):
    """uvicorn logs every exception an app raises; the emulator's deliberate drops are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        from airflow_provider_piriod.testing.faults import DropConnection

        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on loopback; port 0 lets the OS choose a free one (no race with other tests)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def make_server(state: Any, sock: socket.socket) -> uvicorn.Server:
    """A uvicorn server for ``state`` on ``sock`` (uvloop and httptools when installed), an answer in one write."""
    import uvicorn

    from airflow_provider_piriod.testing.app import EmulatorApp
    from airflow_provider_piriod.testing.segments import one_turn_protocol

    logging.getLogger("uvicorn.error").addFilter(_HideDeliberateDrops())
    config = uvicorn.Config(
        EmulatorApp(state),
        http=one_turn_protocol(),
        proxy_headers=False,  # no proxy in front of it: the middleware would only cost time
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        backlog=1024,
    )
    return uvicorn.Server(config)


class PiriodEmulator:
    """
    A contract-true Piriod API on loopback, as a context manager.

    ``with PiriodEmulator(customers=50) as emulator:`` starts it on a free port and stops it on
    exit. By default it runs in a background thread of this process; ``in_process=False`` runs it
    as a child process instead (use that when measuring the client, so both do not share one GIL).
    Control methods (faults, creating and changing objects, the request log) work the same either way.

    Besides customers it serves contacts, invoices, payments, subscriptions, creditnotes, plans,
    products and payment-receipts, generated from ``seed`` with consistent relationships
    (``products`` live products; about ``invoices_per_customer`` invoices per customer, with their
    payments, credit notes and receipts). :meth:`records`, :meth:`record`, :meth:`create` and
    :meth:`update` work on any of them and keep money exact (``Decimal``).
    """

    def __init__(
        self,
        *,
        customers: int = 100,
        seed: int = 0,
        latency_ms: float = 0.0,
        rate_limit: float = 0.0,
        token: str = "",
        workspace: str = "",
        port: int = 0,
        in_process: bool = True,
        products: int = 6,
        invoices_per_customer: int = 3,
        webhook: dict[str, Any] | None = None,
    ) -> None:
        self.options: dict[str, Any] = {
            "customers": customers,
            "seed": seed,
            "latency_ms": latency_ms,
            "rate_limit": rate_limit,
            "token": token,
            "workspace": workspace,
            "products": products,
            "invoices_per_customer": invoices_per_customer,
        }
        self._webhook = webhook  # registered once started: {"url": ..., "secret": ..., ...} as for set_webhook
        self._port = port
        self._in_process = in_process
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None
        self._http = requests.Session()
        self.url = ""
        self.token = ""
        self.workspace = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PiriodEmulator:
        if self.url:
            return self
        if self._in_process:
            self._start_thread()
        else:
            self._start_process()
        info = self.info()
        self.token, self.workspace = info["token"], info["workspace"]
        if self._webhook:
            self._control("PUT", "webhooks", self._webhook)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(STOP_TIMEOUT)
            self._server = self._thread = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None
        self._http.close()
        self.url = ""

    def __enter__(self) -> PiriodEmulator:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PiriodEmulator(url={self.url!r}, workspace={self.workspace!r})"

    def _start_thread(self) -> None:
        from airflow_provider_piriod.testing.state import EmulatorState

        state = EmulatorState(**self.options)
        sock = bind_loopback(self._port)
        self._server = make_server(state, sock)
        self._thread = threading.Thread(target=self._server.run, args=([sock],), name="piriod-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Piriod emulator did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def _start_process(self) -> None:
        command = [
            sys.executable,
            "-m",
            "airflow_provider_piriod.testing.cli",
            "--port",
            str(self._port),
            "--customers",
            str(self.options["customers"]),
            "--seed",
            str(self.options["seed"]),
            "--latency-ms",
            str(self.options["latency_ms"]),
            "--rate-limit",
            str(self.options["rate_limit"]),
            "--products",
            str(self.options["products"]),
            "--invoices-per-customer",
            str(self.options["invoices_per_customer"]),
        ]
        if self.options["token"]:
            command += ["--token", self.options["token"]]
        if self.options["workspace"]:
            command += ["--workspace", self.options["workspace"]]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        found: list[str] = []
        reader = threading.Thread(target=self._read_ready_line, args=(found,), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not found:
            self.stop()
            raise RuntimeError("the Piriod emulator process did not report its address")
        self.url = found[0]

    def _read_ready_line(self, found: list[str]) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            match = _READY_LINE.search(line)
            if match:
                found.append(match.group(1))
                return

    # ------------------------------------------------------------------ connection helpers

    @property
    def connection(self) -> dict[str, Any]:
        """The Airflow connection for this emulator, as the JSON form of ``AIRFLOW_CONN_...``."""
        return {"conn_type": "piriod", "host": self.url, "login": self.workspace, "password": self.token}

    def connection_env(self, conn_id: str = "piriod_default", **extra: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}``, ready for ``monkeypatch.setenv`` or ``os.environ.update``."""
        conn = dict(self.connection, **({"extra": extra} if extra else {}))
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    # ------------------------------------------------------------------ control

    def _control(self, method: str, route: str, payload: Any = None, **params: Any) -> Any:
        if not self.url:
            raise RuntimeError("the Piriod emulator is not running; use it inside `with PiriodEmulator() as ...`")
        response = self._http.request(
            method, f"{self.url}/__emulator__/{route}", json=payload, params=params, timeout=30
        )
        if response.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {route}: {response.status_code} {response.text}")
        return response.json()

    def info(self) -> dict[str, Any]:
        return self._control("GET", "")

    def customers(self, *, test_mode: bool = False) -> list[dict[str, Any]]:
        """Every customer of the workspace exactly as stored (raw JSON), in creation order."""
        return self._control("GET", "customers", test_mode="true" if test_mode else "false")

    def customer(self, customer_id: str) -> dict[str, Any]:
        return self._control("GET", f"customers/{quote(customer_id, safe='')}")

    def create_customer(
        self, *, after_seconds: float | None = None, after_requests: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """
        Create a customer (``status="pending"``, ``test_mode=True``, any field) and return its JSON;
        or, with ``after_seconds`` / ``after_requests``, create it later (as a signup during a DAG run).
        """
        return self._control("POST", "customers", _with_timing(fields, after_seconds, after_requests))

    def update_customer(
        self, customer_id: str, *, after_seconds: float | None = None, after_requests: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Change fields now, or once ``after_seconds`` pass / ``after_requests`` more API requests arrive."""
        return self._control(
            "PATCH", f"customers/{quote(customer_id, safe='')}", _with_timing(fields, after_seconds, after_requests)
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Records per resource in the workspace: ``{"invoices": {"live": n, "test_mode": m}, ...}``."""
        return self._control("GET", "counts")

    def records(self, resource: str, *, test_mode: bool = False) -> list[dict[str, Any]]:
        """Every object of ``resource`` in the workspace as the API shows it, in creation order, money as Decimal."""
        return self._exact_control("GET", resource, test_mode="true" if test_mode else "false")

    def objects(self, resource: str, *, test_mode: bool | None = None) -> list[dict[str, Any]]:
        """
        Every stored object of ``resource`` in the workspace, live and test mode (or only one mode), in
        creation order: seeded ones and those created by API writes or the control API. Money as Decimal.
        """
        mode = "any" if test_mode is None else "true" if test_mode else "false"
        return self._exact_control("GET", resource, test_mode=mode)

    def record(self, resource: str, object_id: str | int) -> dict[str, Any]:
        """One object of ``resource`` (ids may be integers, as credit notes' are), money as Decimal."""
        return self._exact_control("GET", f"{resource}/{quote(str(object_id), safe='')}")

    def create(
        self,
        resource: str,
        fields: dict[str, Any] | None = None,
        *,
        after_seconds: float | None = None,
        after_requests: int | None = None,
        workspace: str | None = None,
        **more_fields: Any,
    ) -> dict[str, Any]:
        """
        Create an object of ``resource`` now and return it; or, with ``after_seconds`` / ``after_requests``,
        create it later and return ``{"scheduled": True, "id": ...}``. ``fields`` (and keyword fields) are laid
        over generated data; naming a parent (``customer``, ``invoice``, ``product``, ``payment``) ties it to
        that one. Decimal values reach the emulator with every digit.
        """
        payload = _with_timing({**(fields or {}), **more_fields}, after_seconds, after_requests)
        if workspace is not None:
            payload["workspace"] = workspace
        return self._exact_control("POST", resource, payload)

    def update(
        self,
        resource: str,
        object_id: str | int,
        fields: dict[str, Any] | None = None,
        *,
        after_seconds: float | None = None,
        after_requests: int | None = None,
        **more_fields: Any,
    ) -> dict[str, Any]:
        """Change fields (e.g. ``status``) now, or once ``after_seconds`` pass / ``after_requests`` requests arrive."""
        payload = _with_timing({**(fields or {}), **more_fields}, after_seconds, after_requests)
        return self._exact_control("PATCH", f"{resource}/{quote(str(object_id), safe='')}", payload)

    def _exact_control(self, method: str, route: str, payload: Any = None, **params: Any) -> Any:
        """A control call whose bodies carry Decimals as exact JSON numbers, both ways."""
        from airflow_provider_piriod.testing.jsontext import dumps_bytes, loads

        if not self.url:
            raise RuntimeError("the Piriod emulator is not running; use it inside `with PiriodEmulator() as ...`")
        body = None if payload is None else dumps_bytes(payload)
        response = self._http.request(
            method,
            f"{self.url}/__emulator__/{route}",
            data=body,
            params=params,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {route}: {response.status_code} {response.text}")
        return loads(response.content)

    def add_fault(self, kind: str, **spec: Any) -> dict[str, Any]:
        """
        Inject a fault (see ``FAULT_KINDS`` in :mod:`airflow_provider_piriod.testing.faults`): ``path``, ``query``,
        ``nth``, ``method`` (e.g. "POST") and ``times`` choose the requests it hits; ``status``, ``seconds`` and
        the rest shape it, e.g. ``add_fault("commit_then_drop", method="POST", path="/invoices/")``.
        """
        return self._control("POST", "faults", {"kind": kind, **spec})

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def requests(self) -> list[dict[str, Any]]:
        """The API requests received (the token replaced by ``***``), oldest first."""
        return self._control("GET", "requests")

    def count_requests(self, method: str | None = None, path: str | None = None) -> int:
        """How many API requests arrived with ``method`` (e.g. "POST") on ``path`` (a prefix when it ends with "*")."""
        return sum(
            1
            for entry in self.requests()
            if (method is None or entry["method"] == method.upper())
            and (path is None or (entry["path"].startswith(path[:-1]) if path.endswith("*") else entry["path"] == path))
        )

    def set_latency(self, ms: float) -> None:
        self._control("PUT", "latency", {"ms": ms})

    def set_rate_limit(self, per_second: float, burst: float | None = None) -> None:
        """Answer 429 (with Retry-After) beyond ``per_second`` requests per second; 0 turns it off."""
        self._control("PUT", "rate_limit", {"per_second": per_second, "burst": burst})

    def reset(self) -> None:
        """Forget requests, faults, pending changes and webhook deliveries; the data (and webhook) stay."""
        self._control("POST", "reset")

    # ------------------------------------------------------------------ webhooks

    def set_webhook(
        self,
        url: str,
        secret: str,
        events: list[str] | None = None,
        *,
        retries: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        faults: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        Register (or re-register, re-enabling) a webhook: every object created from now on (customer, payment,
        invoice, subscription) is POSTed to ``url``, signed with ``secret``. ``events`` None means all;
        ``faults`` e.g. ``{"bad_signature": True, "duplicate": True, "slow": 2.0}``. See
        :mod:`airflow_provider_piriod.testing.webhooks` for retries and disabling.
        """
        settings = {"retries": retries, "retry_delay": retry_delay, "timeout": timeout, "faults": faults}
        payload: dict[str, Any] = {"url": url, "secret": secret, "events": events}
        payload.update({key: value for key, value in settings.items() if value is not None})
        return self._control("PUT", "webhooks", payload)

    def clear_webhook(self) -> None:
        """Unregister the webhook: nothing more is sent (the deliveries log stays until :meth:`reset`)."""
        self._control("DELETE", "webhooks")

    def webhook(self) -> dict[str, Any]:
        """The webhook's settings and state with ``disabled``, ``disabled_code`` and ``deliveries``."""
        return self._control("GET", "webhooks")

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt, oldest first (``event``, ``object_id``, ``attempt``, ``code``, ``ok``, ...)."""
        return self.webhook()["deliveries"]

    def wait_for_webhooks(self, count: int = 1, *, timeout: float = 10.0, ok: bool = True) -> list[dict[str, Any]]:
        """Wait until ``count`` attempts (only successful ones when ``ok``) are logged and return them all."""
        deadline = time.monotonic() + timeout
        while True:
            attempts = self.webhook_deliveries()
            if sum(1 for a in attempts if a["ok"] or not ok) >= count:
                return attempts
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} webhook deliveries did not happen within {timeout} s: {attempts}")
            time.sleep(0.02)


def _with_timing(fields: dict[str, Any], after_seconds: float | None, after_requests: int | None) -> dict[str, Any]:
    payload = dict(fields)
    if after_seconds is not None:
        payload["after_seconds"] = after_seconds
    if after_requests is not None:
        payload["after_requests"] = after_requests
    return payload
