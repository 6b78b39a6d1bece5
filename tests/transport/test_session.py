"""The session reads the environment's proxy and CA bundle once, and requests still go through that proxy.

requests would look both up on every request; the transport resolves them for Piriod's host when it builds the
session, so what users behind a proxy set (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``)
keeps working. A small forwarding proxy on loopback shows the requests really take that way. The emulator speaks
plain http, which takes a proxy only with ``allow_insecure_http`` (the token would cross it in clear text).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from airflow_provider_piriod.hooks.piriod import PiriodHook

ENVIRONMENT = ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Forward(BaseHTTPRequestHandler):
    """Sends an absolute-form GET on to its origin and relays the answer, noting the URL."""

    protocol_version = "HTTP/1.1"
    server: _Proxy

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        target = urlsplit(self.path)
        origin = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            origin.request("GET", f"{target.path}?{target.query}" if target.query else target.path, headers=headers)
            answer = origin.getresponse()
            body = answer.read()
        finally:
            origin.close()
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA bundle variables but those a test sets (in either case)."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def allow_plain_http_proxies(monkeypatch: pytest.MonkeyPatch, emulator) -> None:
    extra = {**emulator.connection.get("extra", {}), "allow_insecure_http": True}
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps({**emulator.connection, "extra": extra}))


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_set_in_the_environment_carries_every_request(piriod_emulator, environment, proxy, variable):
    customers = piriod_emulator.customers()  # the emulator's control calls would take the proxy too
    allow_plain_http_proxies(environment, piriod_emulator)
    environment.setenv(variable, proxy.url)
    hook = PiriodHook()
    session = hook.get_conn()
    assert session.trust_env is False  # nothing is looked up in the environment per request
    assert session.proxies == {"http": proxy.url}
    assert hook.get_customer(customers[0]["id"]).id == customers[0]["id"]
    assert len(list(hook.iter_customer_json(page_size=10, max_workers=4))) == len(customers)
    seen = list(proxy.seen)
    assert seen[0] == f"{piriod_emulator.url}/customers/{customers[0]['id']}/"
    assert len(seen) == len(piriod_emulator.requests()) == 1 + -(-len(customers) // 10)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "127.0.0.0/8", "*"])
def test_no_proxy_still_sends_piriod_requests_direct(piriod_emulator, environment, proxy, no_proxy):
    count = len(piriod_emulator.customers())
    allow_plain_http_proxies(environment, piriod_emulator)
    environment.setenv("HTTP_PROXY", proxy.url)
    environment.setenv("NO_PROXY", no_proxy)
    hook = PiriodHook()
    assert hook.get_conn().proxies == {}
    assert hook.count_customers() == count
    assert proxy.seen == []


def test_a_plain_http_api_takes_no_proxy_unless_allow_insecure_http(piriod_emulator, environment, proxy):
    count = len(piriod_emulator.customers())
    environment.setenv("HTTP_PROXY", proxy.url)
    hook = PiriodHook()
    assert hook.get_conn().proxies == {}
    assert hook.count_customers() == count
    assert proxy.seen == []


def test_a_proxy_for_another_scheme_is_not_used(piriod_emulator, environment, proxy):
    count = len(piriod_emulator.customers())
    allow_plain_http_proxies(environment, piriod_emulator)
    environment.setenv("HTTPS_PROXY", proxy.url)  # the emulator is plain http
    hook = PiriodHook()
    assert hook.get_conn().proxies == {}
    assert hook.count_customers() == count
    assert proxy.seen == []


@pytest.mark.parametrize(
    "variables, verify",
    [
        ({}, True),
        ({"REQUESTS_CA_BUNDLE": "/etc/company/ca.pem"}, "/etc/company/ca.pem"),
        ({"CURL_CA_BUNDLE": "/etc/company/curl.pem"}, "/etc/company/curl.pem"),
        (
            {"REQUESTS_CA_BUNDLE": "/etc/company/ca.pem", "CURL_CA_BUNDLE": "/etc/company/curl.pem"},
            "/etc/company/ca.pem",
        ),
    ],
)
def test_the_ca_bundle_named_in_the_environment_verifies_tls(piriod_emulator, environment, variables, verify):
    for name, value in variables.items():
        environment.setenv(name, value)
    assert PiriodHook().get_conn().verify == verify
