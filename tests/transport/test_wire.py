"""The direct route's kept-alive connections (:mod:`airflow_provider_piriod.transport.wire`), on loopback servers.

Without a proxy the blocking hook talks ``http.client`` straight to Piriod's host: connections are reused
across requests and workers, one the server closed while idle is replaced without a retry, a body shorter
than its ``Content-Length`` is an incomplete answer (never decoded), and nothing goes to another origin.
"""

from __future__ import annotations

import pytest

from airflow_provider_piriod.exceptions import PiriodError, PiriodNetworkError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.transport.wire import DirectRoute
from tests.hostile import Conn, Request, bounded, connect

pytestmark = pytest.mark.usefixtures("no_environment_proxies")


def customer(customer_id: str) -> dict[str, str]:
    return {"id": customer_id, "name": customer_id.upper()}


def test_requests_reuse_kept_alive_connections_across_workers(hostile_server, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        conn.sleep(0.01)
        conn.respond(200, customer(request.path.split("/")[2]))

    server = hostile_server(handle)
    connect(monkeypatch, server)
    ids = [f"cus_{n:03d}" for n in range(120)]
    hook = PiriodHook()
    found = bounded(lambda: hook.get_customers(ids, max_workers=4), 20).ok()
    assert [c.id for c in found] == ids
    assert server.connections <= 4, f"{server.connections} connections for 120 requests on 4 workers"
    assert hook.tally.requests == 120


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(hostile_server, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, customer(request.path.split("/")[2]))  # keep-alive, then the server changes its mind
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    hook = PiriodHook()
    assert hook.get_customer("cus_A").id == "cus_A"
    assert bounded(lambda: hook.get_customer("cus_B"), 10).ok().id == "cus_B"
    assert server.connections == 2
    assert hook.tally.retries == 0


def test_a_body_shorter_than_its_content_length_is_an_incomplete_answer(hostile_server, monkeypatch):
    whole = b'{"id": "cus_A", "name": "A"}'

    def handle(conn: Conn, request: Request) -> None:
        conn.send(conn.head(200, length=len(whole) + 40))
        conn.send(whole)  # valid JSON, but 40 bytes short of what was declared
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 10).raised(PiriodNetworkError)
    assert "IncompleteRead" in str(error)


def test_the_direct_route_sends_nothing_to_another_origin():
    route = DirectRoute("http://127.0.0.1:9", True, {"Authorization": "Token secret"})
    for url in ("http://127.0.0.2:9/customers/", "https://127.0.0.1:9/customers/", "http://127.0.0.1:10/x/"):
        with pytest.raises(PiriodError, match="not on the configured origin"):
            route.send(url, timeout=1)
