"""The token never leaks through what a hostile server sends back, nor through the way a request is sent.

Hostile servers on loopback (:mod:`tests.hostile`):
a token echoed into an error body is redacted before any cut (no prefix of it survives), an answer for
another id quotes no piece of it, a ``next`` link carrying it is refused before any request, redaction
holds whatever case a redirect host gives it, and plain http never hands it to a proxy from the
environment. Every call runs under :func:`tests.hostile.bounded`.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_piriod.exceptions import PiriodError, PiriodResponseError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from tests.hostile import (
    TOKEN,
    A,
    B,
    Conn,
    Request,
    async_get,
    async_ids,
    bounded,
    connect,
    exception_texts,
    leaked,
    page,
    sync_ids,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fast_retries", "no_environment_proxies")]

#: how long a bounded call may run before the test calls it a hang
HANG = 6.0


def assert_no_leak(texts: dict[str, str]) -> None:
    """No text holds the token or any 8-character piece of it (the message names the longest prefix found)."""
    found = {}
    for name, text in texts.items():
        if leaked(text):
            piece = max((TOKEN[:n] for n in range(8, len(TOKEN) + 1) if TOKEN[:n] in text), key=len, default=None)
            found[name] = f"token prefix {piece!r}" if piece else "a piece of the token"
    assert not found, f"the token (or an 8-character piece of it, token={TOKEN!r}) appears in: {found}"


# ----------------------------------------------------------------------------- a token echoed into an error body

#: field errors are cut at 300 characters: 290 characters of padding put the token across the cut
PAD_300 = "x" * 290

ECHOES = {
    "400-field-error-300": (400, {"name": [PAD_300 + TOKEN]}),
    "400-list-300": (400, [PAD_300 + TOKEN]),
    # a JSON string body, cut at MAX_DETAIL_CHARS (500)
    "400-scalar-500": (400, json.dumps("s" * 490 + TOKEN)),
    # retried: the text also reaches the retry warning in the log
    "503-field-error-300": (503, {"error": [PAD_300 + TOKEN]}),
    # the test_connection() path
    "401-field-error-300": (401, {"token": [PAD_300 + TOKEN]}),
}


@pytest.mark.parametrize("case", ECHOES)
def test_no_piece_of_an_echoed_token_survives_the_cut_of_an_error_text(hostile_server, monkeypatch, logs, case):
    """A server echoing the token across the point where an error text is cut: the text is redacted before the
    cut, so no prefix of the token reaches the sync or async exception, ``test_connection()`` or the logs."""
    status, body = ECHOES[case]
    server = hostile_server(lambda conn, request: conn.respond(status, body))
    connect(monkeypatch, server, timeout=2, max_retries=1)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)
    async_error = bounded(lambda: async_get("cus_A"), HANG).raised(PiriodError)
    ok, message = bounded(lambda: PiriodHook().test_connection(), HANG).ok()
    assert not ok
    assert_no_leak(
        {
            **{f"sync {k}": v for k, v in exception_texts(error).items()},
            **{f"async {k}": v for k, v in exception_texts(async_error).items()},
            "test_connection": message,
            "logs": logs(),
        }
    )


def test_an_answer_for_another_id_quotes_no_piece_of_the_token(hostile_server, monkeypatch, logs):
    """A retrieve answered with another id whose text ends in the token: the error quoting that id is redacted
    before it is cut, in ``get_customer``, ``get_customers`` and the async hook."""
    wrong = {"id": "w" * 50 + TOKEN, "name": "x"}
    server = hostile_server(lambda conn, request: conn.respond(200, wrong))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    error = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodResponseError)
    errors = bounded(lambda: PiriodHook().get_customers(["cus_A", "cus_B"], max_workers=2), HANG).raised(PiriodError)
    async_error = bounded(lambda: async_get("cus_A"), HANG).raised(PiriodResponseError)
    assert_no_leak(
        {
            **{f"get_customer {k}": v for k, v in exception_texts(error).items()},
            **{f"get_customers {k}": v for k, v in exception_texts(errors).items()},
            **{f"async {k}": v for k, v in exception_texts(async_error).items()},
            "logs": logs(),
        }
    )


# ----------------------------------------------------------------------------- the token put into a URL


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_next_link_carrying_the_token_in_its_query_is_refused(hostile_server, monkeypatch, logs, client):
    """A ``next`` link on the configured origin and the listed path whose query holds the token (a server or a
    proxy echoing it): refused before any request, so the token never travels in a request line (access logs of
    every proxy, debug logs), and the refusal itself does not quote it."""

    def handle(conn: Conn, request: Request) -> None:
        if request.param("page") in (None, "1"):
            conn.respond(200, page([A], f"http://127.0.0.1:{conn.server.port}/customers/?page=2&t={TOKEN}", 2))
        else:
            conn.respond(200, page([B], None, 2))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    outcome = bounded(sync_ids if client == "sync" else async_ids, HANG)
    targets = [r.target for r in server.requests]
    assert not any(TOKEN in t for t in targets), f"the token was sent in a URL: {targets}"
    assert_no_leak({**exception_texts(outcome.raised(PiriodResponseError)), "logs": logs()})


#: a token with capitals: a host name is lower-cased by URL parsing, a case-sensitive redaction would miss it
MIXED_TOKEN = "Tok_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_mixed_case_token_echoed_as_a_redirect_host_is_redacted(hostile_server, monkeypatch, client):
    """A 302 whose ``Location`` host is the token: the error naming where it pointed carries the token in no
    case (the host of a URL comes back lower-cased, and redaction still finds it)."""

    def handle(conn: Conn, request: Request) -> None:
        token = request.headers["authorization"].removeprefix("Token ")
        conn.respond(302, b"", [("Location", f"http://{token}.example/")])

    server = hostile_server(handle)
    connect(monkeypatch, server, token=MIXED_TOKEN, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    error = bounded(call, HANG).raised(PiriodResponseError)
    found = [name for name, text in exception_texts(error).items() if MIXED_TOKEN.lower() in text.lower()]
    assert not found, f"the token (in some case) appears in {found}: {str(error)!r}"


# ----------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("client", ["sync", "async"])
def test_plain_http_never_hands_the_token_to_a_proxy_from_the_environment(hostile_server, monkeypatch, client):
    """Plain http is allowed for loopback hosts only; an ``HTTP_PROXY`` in the environment (common on corporate
    workers) must not receive such requests, since their ``Authorization`` header would travel in clear text to
    it. (The proxy here is a loopback stand-in.)"""
    proxy = hostile_server(lambda conn, request: conn.respond(200, A), name="proxy")
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    connect(monkeypatch, "http://127.0.0.1:9", timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A").id) if client == "sync" else (lambda: async_get("cus_A")["id"])
    bounded(call, HANG)
    assert not proxy.saw(TOKEN), (
        f"the proxy from HTTP_PROXY received the token in clear text: {proxy.requests[0].raw[:120]!r}"
    )
