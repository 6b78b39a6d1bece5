"""One blocking attempt over urllib3's kept-alive connections (:mod:`airflow_provider_piriod.transport.attempt`).

Connections are reused across requests and workers, one the server closed while idle is replaced without a
retry, a body shorter than its ``Content-Length`` is an incomplete answer (never decoded), header blocks
http.client would read leniently are refused, and nothing goes to another origin. Most run twice: straight
to the server, and through a proxy (the same server, answering absolute-form targets).
"""

from __future__ import annotations


import gzip
import json
import threading

import pytest

from airflow_provider_piriod.exceptions import PiriodError, PiriodNetworkError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.transport.session import Route, build_session
from tests.hostile import Conn, Request, bounded, connect, leaked

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
    closed = threading.Event()

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, customer(request.path.split("/")[2]))  # keep-alive, then the server changes its mind
        conn.close()
        closed.set()

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    hook = PiriodHook()
    assert hook.get_customer("cus_A").id == "cus_A"
    assert closed.wait(10)  # the close has happened before the next request, however loaded the machine
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


def test_a_header_line_that_is_not_name_colon_value_is_refused_not_taken_as_the_end_of_the_headers(
    hostile_server, monkeypatch
):
    """http.client's email parser ended the headers at such a line, so the Content-Length after it was lost and the
    body was read until the server closed; the answer is refused at once instead."""
    body = json.dumps(customer("cus_A")).encode()

    def handle(conn: Conn, request: Request) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nX-Note oops\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=5, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    assert "not 'name: value'" in str(outcome.raised(PiriodNetworkError))
    assert outcome.elapsed < 2


def test_a_transfer_coding_other_than_chunked_is_refused_not_framed_by_its_content_length(hostile_server, monkeypatch):
    """RFC 9112 6.1: with a Transfer-Encoding, Content-Length is not the framing; reading by it (as http.client did)
    could leave the rest of the answer on a kept-alive connection for the next request to read."""
    body = json.dumps(customer("cus_A")).encode()

    def handle(conn: Conn, request: Request) -> None:
        conn.send(conn.head(200, [("Transfer-Encoding", "gzip")], length=len(body)) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 10).raised(PiriodNetworkError)
    assert "transfer coding other than chunked" in str(error)


def test_a_folded_header_line_continues_the_value_before_it(hostile_server, monkeypatch):
    """RFC 9112 5.2: a client replaces an obs-fold with a space; the gzip answer below decodes."""

    def handle(conn: Conn, request: Request) -> None:
        body = gzip.compress(json.dumps(customer("cus_A")).encode())
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Encoding:\r\n  gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    assert bounded(lambda: PiriodHook().get_customer("cus_A"), 10).ok().id == "cus_A"


@pytest.mark.parametrize("value", [b"a\rContent-Length: 2", b"a\x00b"], ids=["bare CR", "NUL"])
def test_a_header_line_holding_a_bare_cr_or_a_nul_is_refused(hostile_server, monkeypatch, value):
    """RFC 9110 5.5: a bare CR could hide the next field (here the real Content-Length) inside this one's value."""
    body = json.dumps(customer("cus_A")).encode()

    def handle(conn: Conn, request: Request) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nX-A: " + value + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=5, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    assert "CR or NUL" in str(outcome.raised(PiriodNetworkError))
    assert outcome.elapsed < 2


@pytest.mark.parametrize(("shape", "refused"), [("99 headers", False), ("100 headers", True), ("a 70 KiB line", True)])
def test_header_blocks_beyond_http_client_limits_are_refused(hostile_server, monkeypatch, shape, refused):
    """http.client's limits: 100 lines with the empty one that ends the block, 64 KiB a line."""

    def handle(conn: Conn, request: Request) -> None:
        if shape == "a 70 KiB line":
            headers = [("X-Big", "v" * 70 * 1024)]
        else:  # with Content-Type and Content-Length
            headers = [(f"X-H{n}", "v") for n in range(int(shape.split()[0]) - 2)]
        conn.respond(200, customer("cus_A"), headers)

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    if refused:
        outcome.raised(PiriodNetworkError)
    else:
        assert outcome.ok().id == "cus_A"


def test_the_route_sends_nothing_to_another_origin():
    settings = PiriodSettings(base_url="http://127.0.0.1:9", workspace="acc_1", token="secret")
    route = Route(settings, build_session(settings))
    for url in ("http://127.0.0.2:9/customers/", "https://127.0.0.1:9/customers/", "http://127.0.0.1:10/x/"):
        with pytest.raises(PiriodError, match="not on the configured origin"):
            route.open("GET", url, None, {}, timeout=1)


# ----------------------------------------------------------------------------- both routes

ROUTES = ["direct", "proxied"]


def use_route(monkeypatch: pytest.MonkeyPatch, server, route: str, **extra) -> None:
    """The direct route, or requests through a proxy: the same server, as its own proxy (absolute-form targets)."""
    if route == "proxied":
        monkeypatch.setenv("HTTP_PROXY", server.url)
        extra["allow_insecure_http"] = True
    connect(monkeypatch, server, **extra)


def page(results: list[dict[str, str]]) -> dict[str, object]:
    return {"count": len(results), "next": None, "previous": None, "results": results}


@pytest.mark.parametrize("route", ROUTES)
def test_an_interim_answer_never_leaves_its_connection_to_the_next_request(hostile_server, monkeypatch, route):
    """A 103 and then, later, the final answer: the 103 is skipped (RFC 9110 15.2) and the final answer read, so
    the next request on the connection never reads the answer meant for this one (a list page has no id to tell)."""

    def handle(conn: Conn, request: Request) -> None:
        if request.param("status") == "pending":
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            conn.sleep(0.3)
            conn.respond(200, page([customer("cus_C")]))
        else:
            conn.respond(200, page([customer("cus_A"), customer("cus_B")]))

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, max_retries=0)
    hook = PiriodHook()
    pending = bounded(lambda: [c["id"] for c in hook.iter_customer_json({"status": "pending"}, page_size=10)], 10)
    assert pending.ok() == ["cus_C"]
    active = bounded(lambda: [c["id"] for c in hook.iter_customer_json({"status": "active"}, page_size=10)], 10)
    assert active.ok() == ["cus_A", "cus_B"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_content_length_repeated_with_one_value_frames_the_body(hostile_server, monkeypatch, route):
    """``Content-Length: 40, 40`` (RFC 9112 6.3 allows reading it as 40) on a connection kept open: the body is
    those 40 bytes, not everything until the server closes."""

    def handle(conn: Conn, request: Request) -> None:
        body = json.dumps(customer("cus_A")).encode()
        conn.send(conn.head(200, [("Content-Length", f"{len(body)}, {len(body)}")]) + body)

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, timeout=5, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), 10)
    assert outcome.ok().id == "cus_A"
    assert outcome.elapsed < 2


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("header", ["Content-Length", "Content-Encoding", "Transfer-Encoding"])
def test_a_token_echoed_into_a_framing_header_is_cut_out_of_the_error(hostile_server, monkeypatch, route, header):
    def handle(conn: Conn, request: Request) -> None:
        token = request.headers["authorization"].split(" ", 1)[1]
        value = token if header == "Content-Length" else "x" * 20 + token
        conn.respond(200, b"{}", [(header, value)])

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), 10).raised(PiriodError)
    assert not leaked(str(error)), str(error)


@pytest.mark.parametrize("route", ROUTES)
def test_a_chunked_answer_is_read_whole_and_its_connection_kept(hostile_server, monkeypatch, route):
    def handle(conn: Conn, request: Request) -> None:
        body = json.dumps(customer(request.path.split("/")[2])).encode()
        chunks = b"".join(b"%x;note=1\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
        conn.send(conn.head(200, [("Transfer-Encoding", "chunked")]) + chunks + b"0\r\nX-Trailer: t\r\n\r\n")

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, max_retries=0)
    hook = PiriodHook()
    found = bounded(lambda: [hook.get_customer(i).id for i in ("cus_A", "cus_B", "cus_C")], 10).ok()
    assert found == ["cus_A", "cus_B", "cus_C"]
    assert server.connections == 1


@pytest.mark.parametrize("route", ROUTES)
def test_the_late_body_of_a_204_that_declared_one_is_never_read_by_the_next_request(hostile_server, monkeypatch, route):
    """A 204 never has a body; one that declares a length (RFC 9110 8.6 forbids it) may send it later, and on a
    reused connection the next request would read it as its own answer. Its connection is closed instead."""
    late = json.dumps(customer("cus_Y") | {"name": "LEFT OVER"}).encode()
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(late), late)

    def handle(conn: Conn, request: Request) -> None:
        if request.path.split("/")[2] == "cus_X":
            conn.send(b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n" % len(smuggled))
            conn.sleep(0.3)
            conn.send(smuggled)
        else:
            conn.respond(200, customer(request.path.split("/")[2]))

    server = hostile_server(handle)
    use_route(monkeypatch, server, route, timeout=3, max_retries=0)
    hook = PiriodHook()
    bounded(lambda: hook.get_customer("cus_X"), 10).raised(PiriodError)
    assert bounded(lambda: hook.get_customer("cus_Y"), 10).ok().name == "CUS_Y"
