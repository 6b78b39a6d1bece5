"""Writes through the one request funnel: what is retried, and what is *ambiguous* and never resent.

A POST (a create or an action) that left whole and got no answer, or got a 5xx, may have taken effect on
Piriod's side; the transport raises :class:`PiriodAmbiguousWriteError` at once, after exactly one request,
for the hook to resolve by looking the object up. Nothing sent (a refused connection) or refused (429) is
retried as a read is. PATCH, PUT and DELETE set a state, so they are retried like reads.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodNetworkError,
    PiriodValidationError,
)
from airflow_provider_piriod.hooks.piriod import PiriodHook
from tests.hostile import TOKEN, Conn, Request, bounded, connect, connect_to_a_closed_port, exception_texts, leaked

pytestmark = pytest.mark.usefixtures("no_environment_proxies", "fast_retries")

CREATED = {"id": "cus_new", "name": "ACME"}
BODY = json.dumps({"name": "ACME", "metadata": {"airflow_write_key": "k1"}}).encode()


def post(body: bytes = BODY) -> object:
    return PiriodHook()._transport.write("POST", "/customers/", body, "create customers")


def posts(server) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


def test_a_create_answered_201_returns_its_json_and_sends_the_body_as_json(hostile_server, monkeypatch):
    seen: list[Request] = []

    def handle(conn: Conn, request: Request) -> None:
        seen.append(request)
        conn.respond(201, CREATED)

    connect(monkeypatch, hostile_server(handle), max_retries=3)
    assert bounded(post, 10).ok() == CREATED
    (request,) = seen
    assert request.method == "POST" and request.path == "/customers/"
    assert request.headers["content-type"] == "application/json"
    assert request.raw.endswith(BODY)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_create_answered_5xx_is_ambiguous_and_sent_once(hostile_server, monkeypatch, status):
    server = hostile_server(lambda conn, request: conn.respond(status, {"detail": "upstream"}))
    connect(monkeypatch, server, max_retries=3)
    error = bounded(post, 10).raised(PiriodAmbiguousWriteError)
    assert error.status_code == status
    assert posts(server) == 1


def test_a_create_whose_connection_drops_after_the_request_arrived_is_ambiguous_and_sent_once(
    hostile_server, monkeypatch
):
    server = hostile_server(lambda conn, request: conn.close())  # committed, then the answer is lost
    connect(monkeypatch, server, max_retries=3)
    bounded(post, 10).raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1


def test_a_create_answered_after_the_deadline_is_ambiguous_and_sent_once(hostile_server, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        if conn.sleep(4):  # the timeout is 1 s: the answer comes after the client gave up
            conn.respond(201, CREATED)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=3)
    outcome = bounded(post, 10)
    outcome.raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1


def test_a_create_with_a_2xx_body_that_cannot_be_read_is_ambiguous(hostile_server, monkeypatch):
    server = hostile_server(lambda conn, request: conn.respond(201, b"<html>created?</html>", content_type="text/html"))
    connect(monkeypatch, server, max_retries=3)
    bounded(post, 10).raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1


def test_a_create_refused_with_429_is_retried_and_succeeds(hostile_server, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        if posts(server) == 1:
            conn.respond(429, {"detail": "slow down"}, headers=[("Retry-After", "0")])
        else:
            conn.respond(201, CREATED)

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=3)
    assert bounded(post, 10).ok() == CREATED
    assert posts(server) == 2


def test_a_create_whose_connection_is_refused_was_never_sent_and_is_retried_as_a_read(monkeypatch):
    connect_to_a_closed_port(monkeypatch, max_retries=2)
    error = bounded(post, 20).raised(PiriodNetworkError)
    assert not isinstance(error, PiriodAmbiguousWriteError)
    assert error.request_sent is False


def test_a_create_refused_with_400_raises_the_field_errors_without_retrying(hostile_server, monkeypatch):
    refusal = {"code": "ValidationFailed", "errors": {"email": ["Enter a valid email address."]}}
    server = hostile_server(lambda conn, request: conn.respond(400, refusal))
    connect(monkeypatch, server, max_retries=3)
    error = bounded(post, 10).raised(PiriodValidationError)
    assert "email" in str(error)
    assert posts(server) == 1


def test_an_ambiguous_create_never_quotes_the_token(hostile_server, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        token = request.headers["authorization"].split(" ", 1)[1]
        conn.respond(502, {"detail": f"upstream saw {token}"}, reason=f"Bad {token}")

    connect(monkeypatch, hostile_server(handle), max_retries=3)
    error = bounded(post, 10).raised(PiriodAmbiguousWriteError)
    for text in exception_texts(error).values():
        assert not leaked(text), text


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_an_update_answered_502_is_retried_like_a_read(hostile_server, monkeypatch, method):
    def handle(conn: Conn, request: Request) -> None:
        if len(server.requests) == 1:
            conn.respond(502, {"detail": "upstream"})
        else:
            conn.respond(200, CREATED)

    server = hostile_server(handle)
    connect(monkeypatch, server, max_retries=3)
    result = bounded(lambda: PiriodHook()._transport.write(method, "/customers/cus_new/", BODY, "update"), 10).ok()
    assert result == CREATED
    assert [request.method for request in server.requests] == [method, method]


def test_a_delete_answered_204_returns_none(hostile_server, monkeypatch):
    server = hostile_server(lambda conn, request: conn.respond(204, b"", content_type=None))
    connect(monkeypatch, server, max_retries=3)
    archive = bounded(lambda: PiriodHook()._transport.write("DELETE", "/customers/cus_1/", None, "archive"), 10)
    assert archive.ok() is None
    assert [request.method for request in server.requests] == ["DELETE"]


def test_a_write_never_sends_the_token_anywhere_but_the_authorization_header(hostile_server, monkeypatch):
    server = hostile_server(lambda conn, request: conn.respond(201, CREATED))
    connect(monkeypatch, server, max_retries=0)
    bounded(post, 10).ok()
    (request,) = server.requests
    assert request.raw.count(TOKEN.encode()) == 1
    assert isinstance(PiriodAmbiguousWriteError("x"), PiriodError)
