"""Adversarial tests, round 2: hostile loopback servers against the public hooks (sync and async).

Only the public interface is used: ``PiriodHook`` / ``PiriodAsyncHook``, the typed exceptions and the
:mod:`tests.hostile` helpers. Every call runs under :func:`tests.hostile.bounded` (or ``run_async``).

Each of these failed when written, and was fixed after: the sync hook took a 102/103 interim answer as final;
endless 100 Continue answers grew its memory without bound (the header-line recorder kept every line); it read
lenient status lines (``+200``, ``2_00``, ``0200``, ``HTTP/1.``, a bare CR or NUL in the reason) and reused the
connection of an HTTP/1.0 answer framed by chunks; the async hook, then over httpx, kept h11's exception, token
included, as ``__context__`` and reused a connection with bytes left after an answer (the next request read them
as its answer); both followed a ``next`` link holding the token percent-encoded, and repeated a token prefix (or
a ``%74ok_...`` redirect host) a server quoted. Everything else here held. The async hook now sends through the
same urllib3 attempt as the sync one, in a worker thread.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodNetworkError,
    PiriodResponseError,
)
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from tests.transport.test_transport_adversary import TRICKLES, asked, customer
from tests.hostile import (
    TOKEN,
    chain,
    reset,
    Conn,
    Request,
    async_get,
    bounded,
    connect,
    exception_texts,
    gzip_bytes,
    leaked,
    page,
    run_async,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fast_retries", "no_environment_proxies")]

HANG = 10.0


def token_of(request: Request) -> bytes:
    return request.headers["authorization"].split(" ", 1)[1].encode()


def chain_leaks(exc: BaseException | None) -> list[str]:
    return [f"{type(e).__name__}: {e!r}"[:300] for e in chain(exc) if leaked(str(e)) or leaked(repr(e))]


def posts(server) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


def body_of(obj) -> bytes:
    return json.dumps(obj).encode()


# ============================================================================= 1xx interim answers


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\n"],
    ids=["103", "102"],
)
def test_an_interim_1xx_before_the_final_answer_is_skipped_by_the_sync_hook(hostile_server, monkeypatch, interim):
    """RFC 9110 15.2: "A client MUST be able to parse one or more 1xx responses received prior to a final
    response, even if the client does not expect one". A 102/103 followed by a well-formed 200 should give the
    object. http.client only skips 100 Continue."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(
            interim
            + b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    assert bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).ok().id == "cus_A"


def test_an_interim_103_before_the_final_answer_is_skipped_by_the_async_hook(hostile_server, monkeypatch):
    """The async twin of the test above."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    assert bounded(lambda: async_get("cus_A"), HANG).ok()["id"] == "cus_A"


def test_a_create_answered_103_then_201_returns_the_object_with_one_post(hostile_server, monkeypatch):
    """A create whose 201 comes after a 103 Early Hints: the object is created and returned, one POST, with no
    lookup by write key (the 103 was once taken as the final answer: an ambiguous write, then a lookup)."""

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            body = body_of({"id": "cus_new", "name": "ACME"})
            conn.send(
                b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
        else:
            conn.respond(500, {"detail": "lookups are down"})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    created = bounded(lambda: PiriodHook().create_object("customers", {"name": "ACME"}, write_key="k1"), HANG).ok()
    assert created["id"] == "cus_new"
    assert [r.method for r in server.requests] == ["POST"]


def test_endless_100_continue_answers_end_at_the_deadline(hostile_server, monkeypatch):
    """http.client skips 100 Continue answers without limit; the attempt's deadline still ends it."""
    server = hostile_server(lambda conn, request: conn.forever(b"HTTP/1.1 100 Continue\r\n\r\n", 0.001))
    connect(monkeypatch, server, timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG)
    outcome.raised(PiriodNetworkError)


# ============================================================================= lenient status lines


BAD_STATUS_LINES = {
    # RFC 9112 4: status-code = 3DIGIT; http.client reads it with int(), which also takes these
    "plus": b"HTTP/1.1 +200 OK",
    "underscore": b"HTTP/1.1 2_00 OK",
    "4 digits": b"HTTP/1.1 0200 OK",
    "suffix": b"HTTP/1.1 200x OK",
    # RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT; http.client takes anything starting "HTTP/1." as 1.1
    "HTTP/1.1x": b"HTTP/1.1x 200 OK",
    "HTTP/1.": b"HTTP/1. 200 OK",
    "HTTP/1.1.1": b"HTTP/1.1.1 200 OK",
    # reason-phrase = *( HTAB / SP / VCHAR / obs-text ): a lenient peer ending lines at the bare CR frames this
    # answer with Content-Length: 0 (RFC 9110 5.5, as in a header line)
    "bare CR": b"HTTP/1.1 200 OK\rContent-Length: 0",
    "NUL": b"HTTP/1.1 200 O\x00K",
}


@pytest.mark.parametrize("line", list(BAD_STATUS_LINES))
def test_a_status_line_http_client_would_read_leniently_is_refused(hostile_server, monkeypatch, line):
    """A strict peer (h11, a proxy) frames the same bytes as an error or as another answer, as with the chunk
    sizes already refused: such an answer is refused (a PiriodError), not taken as a 200."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(BAD_STATUS_LINES[line] + b"\r\nX-Len: 1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).raised(PiriodError)


def test_a_status_line_without_reason_and_http_1_0_are_read(hostile_server, monkeypatch):
    """Holds: ``HTTP/1.1 200`` (no reason phrase) and an HTTP/1.0 answer are both fine answers."""
    state = {"n": 0}

    def handle(conn: Conn, request: Request) -> None:
        state["n"] += 1
        body = body_of(customer(asked(request)))
        line = b"HTTP/1.1 200\r\n" if state["n"] == 1 else b"HTTP/1.0 200 OK\r\n"
        conn.send(line + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    hook = PiriodHook()
    assert bounded(lambda: hook.get_customer("cus_A"), HANG).ok().id == "cus_A"
    assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().id == "cus_B"


# ============================================================================= framing


FRAMINGS = {
    "TE chunked, identity": b"Transfer-Encoding: chunked, identity\r\n",
    "TE identity, chunked": b"Transfer-Encoding: identity, chunked\r\n",
    "TE xchunked": b"Transfer-Encoding: xchunked\r\n",
    "TE twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    "TE gzip, chunked": b"Transfer-Encoding: gzip, chunked\r\n",
    "CL then TE folded": b"Content-Length: 3\r\nTransfer-Encoding:\r\n chunked\r\n",
    "TE with a tab": b"Transfer-Encoding:\tchunked\t\r\nContent-Length: 3\r\n",
    "CL with plus": b"Content-Length: +%(n)d\r\n",
    "CL with spaces inside": b"Content-Length: 1 %(n)d\r\n",
    "CL hex": b"Content-Length: 0x%(n)x\r\n",
    "CL negative": b"Content-Length: -1\r\n",
    "CL two values": b"Content-Length: %(n)d, %(m)d\r\n",
    "CL huge": b"Content-Length: 99999999999999999999999999999\r\n",
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_ambiguous_framing_is_refused_or_read_as_the_right_object_and_never_desyncs(
    hostile_server, monkeypatch, framing
):
    """Every one of these is an answer two readers could frame differently. The call either fails with a
    PiriodError or returns the object asked for; the next call on the same hook gets its own object."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        if asked(request) == "cus_B":
            conn.respond(200, customer("cus_B"))
            return
        head = (
            FRAMINGS[framing] % {b"n": len(body), b"m": len(body) + 7}
            if b"%(" in FRAMINGS[framing]
            else FRAMINGS[framing]
        )
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        smuggle = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body_of(customer("cus_X"))),
            body_of(customer("cus_X")),
        )
        payload = chunked if b"chunked" in head else body
        conn.send(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + payload + smuggle)
        conn.sleep(2)
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=0)
    hook = PiriodHook()
    first = bounded(lambda: hook.get_customer("cus_A"), HANG)
    if first.error is None:
        assert first.value.id == "cus_A"
    else:
        first.raised(PiriodError)
    assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().id == "cus_B"


def test_a_204_with_a_body_does_not_leave_the_body_for_the_next_request(hostile_server, monkeypatch):
    """A 204 to the DELETE whose "body" is the answer to the next request: the connection is not reused, so the
    next GET gets the server's own answer, not the smuggled one."""
    fake = body_of({"id": "cus_B", "name": "SMUGGLED"})

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "DELETE":
            conn.send(
                b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(fake) + fake
            )
            return
        conn.respond(200, customer(asked(request)))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    hook = PiriodHook()
    bounded(lambda: hook.archive_object("customers", "cus_A"), HANG).ok()
    assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().name == "CUS_B"


def test_an_answer_followed_by_a_late_second_answer_is_not_taken_for_the_next_request(hostile_server, monkeypatch):
    """Two answers for one request, the second a little later: the next request gets the server's answer to it."""
    fake = body_of({"id": "cus_B", "name": "SMUGGLED"})

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, customer(asked(request)))
        if asked(request) == "cus_A":
            conn.sleep(0.05)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(fake) + fake)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    hook = PiriodHook()
    assert bounded(lambda: hook.get_customer("cus_A"), HANG).ok().id == "cus_A"
    time.sleep(0.3)
    assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().name == "CUS_B"


# ============================================================================= bombs


def test_many_empty_gzip_members_end_within_the_deadline(hostile_server, monkeypatch):
    """A gzip body made of a million empty members (each decodes to nothing): bounded by the raw size cap and
    the deadline."""
    member = gzip_bytes(b"")
    body = member * 200_000

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, body, [("Content-Encoding", "gzip")])

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0, max_response_bytes=1 << 20)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG)
    outcome.raised(PiriodError)


def test_an_endless_chunked_body_of_empty_extensions_ends_at_the_deadline(hostile_server, monkeypatch):
    """Chunks of one byte each with long chunk extensions, without end: the deadline ends the attempt."""

    def handle(conn: Conn, request: Request) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.forever(b"1;" + b"x" * 4000 + b"\r\n \r\n", 0.0005)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=0, max_response_bytes=10 << 20)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG)
    outcome.raised(PiriodError)


# ============================================================================= token leaks


ECHO_PLACES = {
    "content-encoding": lambda t: b"HTTP/1.1 200 OK\r\nContent-Encoding: " + t + b"\r\nContent-Length: 2\r\n\r\n{}",
    "content-length": lambda t: b"HTTP/1.1 200 OK\r\nContent-Length: 5, " + t + b"\r\n\r\n{}",
    "reason 502": lambda t: b"HTTP/1.1 502 " + t + b"\r\nContent-Length: 0\r\n\r\n",
    "location upper": lambda t: (
        b"HTTP/1.1 302 Found\r\nLocation: http://" + t.upper() + b".example/x\r\nContent-Length: 0\r\n\r\n"
    ),
    "location userinfo": lambda t: (
        b"HTTP/1.1 302 Found\r\nLocation: http://u:" + t + b"@h.example/\r\nContent-Length: 0\r\n\r\n"
    ),
    "detail upper": lambda t: (
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % (len(t) + 14) + b'{"detail": "' + t.upper() + b'"}'
    ),
    "json escaped": lambda t: (lambda b: b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(b) + b)(
        b'{"detail": "' + b"".join(b"\\u%04x" % c for c in t) + b'"}'
    ),
    "field key": lambda t: (lambda b: b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(b) + b)(
        b'{"' + t + b'": {"' + t + b'": ["' + t + b'"]}}'
    ),
    "html 500": lambda t: (lambda b: b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(b) + b)(
        b"<html>" + b"\t" * 50 + t + b"</html>"
    ),
    "200 not json": lambda t: (lambda b: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(b) + b)(b"x" * 900 + t),
    "id mismatch": lambda t: (lambda b: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(b) + b)(
        b'{"id": "' + t + b'"}'
    ),
    "header name": lambda t: b"HTTP/1.1 200 OK\r\n" + t + b" : x\r\nContent-Length: 2\r\n\r\n{}",
    "header nul": lambda t: b"HTTP/1.1 200 OK\r\nX-A: " + t + b"\x00\r\nContent-Length: 2\r\n\r\n{}",
    "bare cr": lambda t: b"HTTP/1.1 200 OK\r\nX-A: a\rX-B: " + t + b"\r\nContent-Length: 2\r\n\r\n{}",
    "version": lambda t: b"HTTP/" + t + b" 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "status only": lambda t: b"HTTP/1.1 " + t + b"\r\nContent-Length: 2\r\n\r\n{}",
    "chunk ext": lambda t: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;" + t + b"\r\n{}\r\n0\r\n\r\n",
    "chunk size": lambda t: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + t + b"\r\n",
    "trailer": lambda t: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + t + b"\r\n\r\n",
    "long header": lambda t: b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70000 + t + b"\r\n\r\n",
    "te": lambda t: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + t + b"\r\n\r\n{}",
    "retry-after": lambda t: b"HTTP/1.1 503 Busy\r\nRetry-After: " + t + b"\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("place", list(ECHO_PLACES))
def test_an_echoed_token_reaches_no_sync_error_chain_or_log(hostile_server, monkeypatch, logs, place):
    """The server echoes the request's token into one part of its answer: the sync hook's error (str, repr, args,
    detail, errors, traceback, and every exception in its __cause__/__context__ chain) and the logs hold no piece
    of it."""
    server = hostile_server(lambda conn, request: conn.send(ECHO_PLACES[place](token_of(request))) and conn.close())
    connect(monkeypatch, server, timeout=1, max_retries=1)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG)
    error = outcome.raised(PiriodError)
    texts = {k: v for k, v in exception_texts(error).items() if leaked(v)}
    assert not texts, texts
    assert not chain_leaks(error), chain_leaks(error)
    assert not leaked(logs()), logs()[-1500:]


@pytest.mark.parametrize("place", list(ECHO_PLACES))
def test_an_echoed_token_reaches_no_async_error_chain_or_log(hostile_server, monkeypatch, logs, place):
    """The async hook under the same echoes: no piece of the token in its error, its __context__ chain (raised
    ``from None`` only hides the context from tracebacks; ``__context__`` still held httpx's/h11's exception,
    whose message quoted the line it refused) or the logs."""
    server = hostile_server(lambda conn, request: conn.send(ECHO_PLACES[place](token_of(request))) and conn.close())
    connect(monkeypatch, server, timeout=1, max_retries=1)
    outcome = bounded(lambda: async_get("cus_A"), HANG)
    error = outcome.raised(PiriodError)
    texts = {k: v for k, v in exception_texts(error).items() if leaked(v)}
    assert not texts, texts
    assert not chain_leaks(error), chain_leaks(error)
    assert not leaked(logs()), logs()[-1500:]


@pytest.mark.parametrize("place", ["reason 502", "detail upper", "field key", "html 500", "chunk size", "status only"])
def test_an_echoed_token_reaches_no_ambiguous_write_error(hostile_server, monkeypatch, logs, place):
    """A create whose answer echoes the token (and whose lookup by key echoes it too): the ambiguous-write error,
    its chain and the logs hold no piece of it; one POST only."""

    def handle(conn: Conn, request: Request) -> None:
        conn.send(ECHO_PLACES[place](token_of(request)))
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=1)
    outcome = bounded(lambda: PiriodHook().create_object("customers", {"name": "ACME"}, write_key="k1"), HANG)
    error = outcome.raised(PiriodError)
    texts = {k: v for k, v in exception_texts(error).items() if leaked(v)}
    assert not texts, texts
    assert not chain_leaks(error), chain_leaks(error)
    assert not leaked(logs()), logs()[-1500:]
    assert posts(server) == 1


# ============================================================================= write ambiguity


LOST_ANSWERS = {
    "close after the head": lambda conn: conn.close(),
    "reset": reset,
    "half a status line": lambda conn: conn.send(b"HTTP/1.") and conn.close(),
    "head only, then close": lambda conn: (
        conn.send(b'HTTP/1.1 201 Created\r\nContent-Length: 40\r\n\r\n{"id"') and conn.close()
    ),
    "cut chunked": lambda conn: (
        conn.send(b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{"id":') and conn.close()
    ),
    "100 continue, then close": lambda conn: conn.send(b"HTTP/1.1 100 Continue\r\n\r\n") and conn.close(),
    "trickle past the deadline": lambda conn: conn.trickle(b"HTTP/1.1 201 Created\r\n", 0.2),
    "stall": lambda conn: conn.sleep(5),
    "both CL and chunked": lambda conn: conn.send(
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ),
    "gzip cut short": lambda conn: conn.send(
        conn.head(201, [("Content-Encoding", "gzip")], length=10) + gzip_bytes(b'{"id": "cus_new"}')[:10]
    ),
    "1xx 101 switching": lambda conn: (
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n") and conn.close()
    ),
}


@pytest.mark.parametrize("lost", list(LOST_ANSWERS))
def test_a_create_whose_answer_is_lost_is_ambiguous_and_sent_once_when_the_lookup_cannot_tell(
    hostile_server, monkeypatch, lost
):
    """The POST left whole; its answer is lost in one of many ways, and the lookup by write key fails (500): the
    create raises PiriodAmbiguousWriteError and the server received exactly one POST."""

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            LOST_ANSWERS[lost](conn)
        else:
            conn.respond(500, {"detail": "lookups down"})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=2)
    outcome = bounded(lambda: PiriodHook().create_object("customers", {"name": "ACME"}, write_key="k1"), 20)
    outcome.raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1


AFTER_THE_GET = {  # what the server does on the GET's kept-alive connection once it has answered
    "closes it while idle": lambda conn: conn.close(),
    "sends stray bytes": lambda conn: conn.send(
        b'HTTP/1.1 201 Created\r\nContent-Length: 22\r\n\r\n{"id": "cus_SMUGGLED"}'
    ),
}


@pytest.mark.parametrize("after", list(AFTER_THE_GET))
def test_a_create_after_a_kept_alive_connection_went_bad_is_sent_once_and_succeeds(hostile_server, monkeypatch, after):
    """A GET leaves a kept-alive connection in the pool; the server then closes it, or writes stray bytes on it.
    The create must go out on a fresh connection, never read those bytes as its answer, and succeed: one POST."""

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            conn.respond(201, {"id": "cus_new", "name": "ACME", "metadata": {"airflow_write_key": "k1"}})
        else:
            conn.respond(200, customer(asked(request)))
            conn.sleep(0.05)
            AFTER_THE_GET[after](conn)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=2)
    hook = PiriodHook()
    bounded(lambda: hook.get_customer("cus_A"), HANG).ok()
    time.sleep(0.3)
    created = bounded(lambda: hook.create_object("customers", {"name": "ACME"}, write_key="k1"), HANG).ok()
    assert created["id"] == "cus_new"
    assert posts(server) == 1


def test_an_action_whose_answer_is_lost_and_whose_read_back_fails_is_sent_once(hostile_server, monkeypatch):
    """An invoice finalize whose answer is lost, and whose status read-back then fails: ambiguous, one POST."""
    state = {"gets": 0}

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "POST":
            conn.close()
            return
        state["gets"] += 1
        if state["gets"] == 1:
            conn.respond(200, {"id": "inv_1", "status": "draft"})
        else:
            conn.respond(503, {"detail": "down"})

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=1)
    outcome = bounded(lambda: PiriodHook().run_action("invoices", "inv_1", "finalize"), 20)
    outcome.raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1


# ============================================================================= parallel workers


def test_parallel_pages_over_a_server_dropping_connections_are_each_their_own_page(hostile_server, monkeypatch):
    """Pages read 8 at a time over a server that closes kept-alive connections at random (sometimes after
    half an answer): every object once, in order; no page answered with another page's objects."""
    rng, lock = random.Random(11), threading.Lock()
    n_objects, size = 400, 5

    def handle(conn: Conn, request: Request) -> None:
        number = int(request.param("page") or 1)
        start = (number - 1) * size
        results = [customer(f"cus_{i:04d}") for i in range(start, min(start + size, n_objects))]
        nxt = f"{conn.server.url}/customers/?page_size={size}&page={number + 1}" if start + size < n_objects else None
        body = body_of(page(results, nxt, n_objects))
        with lock:
            fate = rng.random()
        if fate < 0.1:
            conn.send(conn.head(200, length=len(body)) + body[: len(body) // 2])
            conn.close()
            return
        conn.respond(200, body)
        if fate < 0.3 and conn.sleep(0.002):
            conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=6)
    ids = bounded(lambda: [c["id"] for c in PiriodHook().iter_customer_json({}, page_size=size, max_workers=8)], 30)
    assert ids.ok() == [f"cus_{i:04d}" for i in range(n_objects)]


def test_parallel_ids_over_a_server_answering_on_the_wrong_connection_get_their_own_answers(
    hostile_server, monkeypatch
):
    """Many workers; the server sometimes answers one request twice (a stray extra answer on the connection).
    Each id must still come back as its own object, or the call fail; never a model for another id."""
    rng, lock = random.Random(5), threading.Lock()

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(200, customer(asked(request)))
        with lock:
            extra = rng.random() < 0.2
        if extra:
            conn.sleep(0.001)
            conn.send(conn.head(200, length=len(body_of(customer("cus_EVIL")))) + body_of(customer("cus_EVIL")))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=3)
    ids = [f"cus_{n:04d}" for n in range(300)]
    outcome = bounded(lambda: PiriodHook().get_customers(ids, max_workers=16), 30)
    if outcome.error is None:
        assert [c.id for c in outcome.value] == ids
    else:
        outcome.raised(PiriodError)


# ==================================================== desync on the async hook's kept-alive connections


def async_two(first: str, second: str, pause: float = 0.0):
    """Two retrieves over one PiriodAsyncHook (one pool): the first's outcome, then the second's JSON."""

    async def run():
        import asyncio

        async with PiriodAsyncHook() as hook:
            try:
                one = await hook.get_customer_json(first)
            except PiriodError as exc:
                one = exc
            if pause:
                await asyncio.sleep(pause)
            return one, await hook.get_customer_json(second)

    return run


def _smuggling_handler(shape: str):
    fake = body_of({"id": "cus_B", "name": "SMUGGLED"})
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(fake) + fake

    def handle(conn: Conn, request: Request) -> None:
        if asked(request) != "cus_A":
            conn.respond(200, customer(asked(request)))
            return
        body = body_of(customer("cus_A"))
        if shape == "second answer in the same write":
            conn.send(conn.head(200, length=len(body)) + body + smuggled)
        elif shape == "body longer than its Content-Length":
            conn.send(conn.head(200, length=len(body)) + body + b"\r\n" + smuggled)
        elif shape == "bytes after the last chunk":
            conn.send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                + smuggled
            )
        elif shape == "CL and chunked":
            chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            conn.send(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked)
                + chunked
                + smuggled
            )
        elif shape == "304 declaring a body":
            conn.send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
        elif shape == "204 followed by bytes":
            conn.send(b"HTTP/1.1 204 No Content\r\n\r\n" + smuggled)

    return handle


SMUGGLING = [
    "second answer in the same write",
    "body longer than its Content-Length",
    "bytes after the last chunk",
    "CL and chunked",
    "304 declaring a body",
    "204 followed by bytes",
]


@pytest.mark.parametrize("shape", SMUGGLING)
def test_the_async_hook_never_reads_bytes_left_after_an_answer_as_the_next_answer(hostile_server, monkeypatch, shape):
    """An answer followed, in the same write, by bytes that form the answer to the next request (``cus_B``,
    named SMUGGLED). The next request on that hook must get the server's own answer to it: bytes left over
    after a complete answer mean its connection's framing cannot be trusted, so it must not be reused (httpcore
    kept h11's leftover buffer and read it as the next answer)."""
    server = hostile_server(_smuggling_handler(shape))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    first, second = run_async(async_two("cus_A", "cus_B"), HANG).ok()
    assert second["name"] == "CUS_B", f"the second request read the smuggled answer (first: {first!r})"


@pytest.mark.parametrize("shape", SMUGGLING)
def test_the_sync_hook_never_reads_bytes_left_after_an_answer_as_the_next_answer(hostile_server, monkeypatch, shape):
    """The same for the sync hook."""
    server = hostile_server(_smuggling_handler(shape))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    hook = PiriodHook()
    bounded(lambda: hook.get_customer("cus_A"), HANG)
    assert bounded(lambda: hook.get_customer("cus_B"), HANG).ok().name == "CUS_B"


@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_ambiguous_framing_on_the_async_hook_is_refused_or_right_and_never_desyncs(
    hostile_server, monkeypatch, framing
):
    """The framing matrix above, for the async hook: a PiriodError or the right object, and the next request gets
    its own answer."""

    def handle(conn: Conn, request: Request) -> None:
        if asked(request) == "cus_B":
            conn.respond(200, customer("cus_B"))
            return
        body = body_of(customer(asked(request)))
        raw = FRAMINGS[framing]
        head = raw % {b"n": len(body), b"m": len(body) + 7} if b"%(" in raw else raw
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        fake = body_of({"id": "cus_B", "name": "SMUGGLED"})
        smuggle = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(fake), fake)
        conn.send(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + (chunked if b"chunked" in head else body) + smuggle)
        conn.sleep(2)
        conn.close()

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=1, max_retries=0)
    first, second = run_async(async_two("cus_A", "cus_B"), HANG).ok()
    assert isinstance(first, PiriodError) or first["id"] == "cus_A", first
    assert second["name"] == "CUS_B"


# ============================================================================= the token in a next link, encoded


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("form", ["first letters percent-encoded", "all percent-encoded"])
def test_a_next_link_carrying_the_token_percent_encoded_is_refused(hostile_server, monkeypatch, client, form):
    """A ``next`` link whose query holds the token percent-encoded (``%74ok_...``): decoded, as every server and
    proxy decodes a query, it is the token. It must be refused before any request, as the plain token is; once
    only the plain text (and ``quote(token)``, which for this token is the plain text) was looked for."""
    from tests.hostile import async_ids, sync_ids

    every = "".join(f"%{ord(c):02X}" for c in TOKEN)
    encoded = every if form == "all percent-encoded" else "%74%6F%6B" + TOKEN[3:]

    def handle(conn: Conn, request: Request) -> None:
        if request.param("page") in (None, "1"):
            conn.respond(200, page([customer("cus_A")], f"{conn.server.url}/customers/?page=2&t={encoded}", 2))
        else:
            conn.respond(200, page([customer("cus_B")], None, 2))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    bounded(sync_ids if client == "sync" else async_ids, HANG)
    sent = [r.param("t") for r in server.requests if r.param("t")]
    assert not sent, f"the token travelled in a request URL: {sent}"


# ============================================================================= a token prefix quoted by the server


QUOTED_TOKENS = {
    # many APIs name the key they refuse by a prefix: a piece of the secret (``leaked`` counts any 8 characters)
    "a token prefix in the detail": lambda token: (401, {"detail": f"Invalid token '{token[:16]}...'"}, []),
    # urlsplit gives the host percent-escapes and all: 32 characters of the token in the message
    "a percent-encoded redirect host": lambda token: (302, b"", [("Location", f"http://%74{token[1:]}.example/")]),
}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("quote", list(QUOTED_TOKENS))
def test_a_token_the_server_quotes_in_part_is_not_repeated_in_the_error(hostile_server, monkeypatch, client, quote):
    """Once only the whole token, as it is, was redacted: a 16-character prefix, or the token percent-encoded as
    a redirect host, survived in the message and ``detail``."""

    def handle(conn: Conn, request: Request) -> None:
        conn.respond(*QUOTED_TOKENS[quote](token_of(request).decode()))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    error = bounded(call, HANG).raised(PiriodError)
    texts = {k: v[:200] for k, v in exception_texts(error).items() if leaked(v)}
    assert not texts, texts


# ==================================================== deadlines: async trickles, parallel trickles

ASYNC_TRICKLES = {
    **{shape: TRICKLES[shape] for shape in ("status line", "headers", "chunk size", "body")},
    "endless 100 continue": lambda conn: conn.forever(b"HTTP/1.1 100 Continue\r\n\r\n", 0.001),
    "endless 103": lambda conn: conn.forever(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", 0.001),
    "101 then silence": lambda conn: (
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n") and conn.sleep(5)
    ),
    "101 then endless bytes": lambda conn: (
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n") and conn.forever(b"x" * 1000, 0.001)
    ),
}


@pytest.mark.parametrize("shape", list(ASYNC_TRICKLES))
def test_async_trickles_and_interim_floods_end_at_the_deadline(hostile_server, monkeypatch, shape):
    server = hostile_server(lambda conn, request: ASYNC_TRICKLES[shape](conn))
    connect(monkeypatch, server, timeout=1, max_retries=0)
    outcome = bounded(lambda: async_get("cus_A"), HANG)
    outcome.raised(PiriodError)


@pytest.mark.parametrize("shape", ["endless 103", "101 then silence", "101 then endless bytes"])
def test_sync_interim_floods_end_at_the_deadline(hostile_server, monkeypatch, shape):
    server = hostile_server(lambda conn, request: ASYNC_TRICKLES[shape](conn))
    connect(monkeypatch, server, timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG)
    outcome.raised(PiriodError)


def test_parallel_workers_all_trickled_end_near_one_deadline(hostile_server, monkeypatch):
    """16 ids, 8 workers, every answer trickled for 10 s: each attempt ends at its 1 s deadline, so the call ends
    well before any one answer could have been read whole (the hang guard, 8 s, is shorter than one answer)."""
    server = hostile_server(lambda conn, request: conn.trickle(b"HTTP/1.1 200 OK\r\n" * 50, 0.2))
    connect(monkeypatch, server, timeout=1, max_retries=0)
    outcome = bounded(lambda: PiriodHook().get_customers([f"cus_{n}" for n in range(16)], max_workers=8), 8)
    outcome.raised(PiriodError)


def test_many_workers_over_a_server_resetting_before_answering_get_their_own_answers(hostile_server, monkeypatch):
    """A server that resets a fifth of the connections after reading a request, before any answer: the reads are
    retried, and each id comes back as its own object."""
    rng, lock = random.Random(3), threading.Lock()

    def handle(conn: Conn, request: Request) -> None:
        with lock:
            drop = rng.random() < 0.2
        if drop:
            reset(conn)
            return
        conn.respond(200, customer(asked(request)))

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=8)
    ids = [f"cus_{n:04d}" for n in range(200)]
    found = bounded(lambda: PiriodHook().get_customers(ids, max_workers=16), 30).ok()
    assert [c.id for c in found] == ids


# ============================================================================= memory bombs in interim answers


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_growth(fn, seconds: float):
    """``bounded(fn)``, and how far the process's resident memory rose above where it started meanwhile."""
    import gc

    gc.collect()
    start, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome = bounded(fn, seconds)
    finally:
        done.set()
        sampler.join(1)
    return outcome, max(0, peak[0] - start)


INTERIM_BOMBS = {
    # holds: a 100 Continue whose header block never ends (http.client's 100-header limit applies to it)
    "endless headers in a 100 Continue": lambda conn: (
        conn.send(b"HTTP/1.1 100 Continue\r\n") and conn.forever(b"X-A: " + b"b" * 60000 + b"\r\n", 0)
    ),
    # 100 Continue answers without end: each is skipped, every line kept
    "endless 100 Continue answers": lambda conn: conn.forever(b"HTTP/1.1 100 Continue\r\n\r\n" * 2000, 0),
    # each 100 Continue within http.client's limits (99 header lines of 60 KB), again and again
    "endless 100 Continue answers of 99 long headers": lambda conn: conn.forever(
        b"HTTP/1.1 100 Continue\r\n" + (b"X-A: " + b"b" * 60000 + b"\r\n") * 99 + b"\r\n", 0
    ),
}


@pytest.mark.parametrize("bomb", list(INTERIM_BOMBS))
def test_an_endless_interim_answer_does_not_grow_memory_without_bound(hostile_server, monkeypatch, bomb):
    """An answer's head is bounded in time by the deadline, and must be bounded in size too. http.client skips
    100 Continue answers without limit, and the line recorder behind the header checks (CheckedResponse) keeps
    every status and blank line it read, for the whole attempt: within a 2 s deadline a loopback server makes
    the client hold hundreds of MiB (GBs with the default 30 s timeout, times max_workers). The client's memory
    must stay within a few tens of MB (a cap on interim answers or on the lines kept) and the call fail."""
    server = hostile_server(lambda conn, request: INTERIM_BOMBS[bomb](conn))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    outcome, growth = peak_growth(lambda: PiriodHook().get_customer("cus_A"), 20)
    print(f"resident memory growth for {bomb!r}: {growth / 2**20:.0f} MiB")
    outcome.raised(PiriodError)
    assert growth < 100 * 2**20, f"resident memory rose by {growth / 2**20:.0f} MiB while reading one answer's head"


# ============================================================================= HTTP/1.0 with Transfer-Encoding


@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_http_1_0_answer_with_transfer_encoding_never_keeps_its_connection(hostile_server, monkeypatch, client):
    """RFC 9112 6.1: Transfer-Encoding received in an HTTP/1.0 message means the framing is faulty: the recipient
    "MUST ... close the connection after processing the message", even with ``Connection: keep-alive``. The
    answer may be refused or read, but the next request must go out on a new connection."""

    def handle(conn: Conn, request: Request) -> None:
        body = body_of(customer(asked(request)))
        conn.send(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    if client == "sync":
        hook = PiriodHook()
        first = bounded(lambda: hook.get_customer("cus_A"), HANG)
        if first.error is None:
            bounded(lambda: hook.get_customer("cus_B"), HANG)
    else:
        first = run_async(async_two("cus_A", "cus_B"), HANG)
        if first.error is None and isinstance(first.value[0], PiriodError):
            return
    if first.error is None:
        assert server.connections == 2, "the connection of an HTTP/1.0 answer framed by chunks was reused"


@pytest.mark.parametrize("bomb", list(INTERIM_BOMBS))
def test_an_endless_interim_answer_does_not_grow_the_async_hooks_memory(hostile_server, monkeypatch, bomb):
    """The async twin of the test above."""
    server = hostile_server(lambda conn, request: INTERIM_BOMBS[bomb](conn))
    connect(monkeypatch, server, timeout=3, max_retries=0)
    outcome, growth = peak_growth(lambda: async_get("cus_A"), 20)
    outcome.raised(PiriodError)
    assert growth < 100 * 2**20, f"resident memory rose by {growth / 2**20:.0f} MiB while reading one answer's head"


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("coding", [None, "gzip"])
def test_an_endless_fast_chunked_body_stops_at_the_size_cap(hostile_server, monkeypatch, client, coding):
    """Holds: endless 64 KB chunks as fast as loopback goes (gzip: of zeros, so each expands): refused at
    max_response_bytes, well before the deadline, without the memory growing past the cap."""
    import zlib

    def handle(conn: Conn, request: Request) -> None:
        headers = [("Transfer-Encoding", "chunked")] + ([("Content-Encoding", coding)] if coding else [])
        conn.send(conn.head(200, headers))
        if coding:
            squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
            piece = squeeze.compress(bytes(1 << 22)) + squeeze.flush(zlib.Z_SYNC_FLUSH)
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            chunk = squeeze.compress(bytes(1 << 22)) + squeeze.flush(zlib.Z_SYNC_FLUSH)
        else:
            chunk = b" " * 65536
        conn.forever(b"%x\r\n%s\r\n" % (len(chunk), chunk), 0)

    server = hostile_server(handle)
    connect(monkeypatch, server, timeout=10, max_retries=0, max_response_bytes=1 << 20)
    call = (lambda: PiriodHook().get_customer("cus_A")) if client == "sync" else (lambda: async_get("cus_A"))
    outcome, growth = peak_growth(call, 15)
    assert "limit" in str(outcome.raised(PiriodResponseError))
    assert growth < 100 * 2**20
