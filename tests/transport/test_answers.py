"""Errors built from what a server sent: typed, capped, and never carrying the token."""

from __future__ import annotations

import json

import pytest

from airflow_provider_piriod.exceptions import PiriodResponseError, PiriodValidationError
from airflow_provider_piriod.protocol import PiriodDecodeError
from airflow_provider_piriod.protocol import decode_json, error_from_response
from airflow_provider_piriod.redaction import MAX_DETAIL_CHARS, MAX_MESSAGE_CHARS, scrub, snippet

TOKEN = "sk_live_0123456789abcdefghijklmn"


def scrubbed(status, body, headers=None, reason="Reason"):
    return scrub(error_from_response("GET", "/invoices/", status, reason, body, headers or {}, TOKEN), TOKEN)


def everything(exc):
    return " ".join([str(exc), repr(exc), str(exc.detail), json.dumps(getattr(exc, "errors", {}))])


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason"),
    [
        (500, b"oops", {}, f"Token {TOKEN}"),
        (302, b"", {"Location": f"http://{TOKEN}@elsewhere.example/"}, "Found"),
        (302, b"", {"Location": f"http://{TOKEN}.elsewhere.example/"}, "Found"),
        (401, ('{"detail": "bad ' + "".join(f"\\u{ord(c):04x}" for c in TOKEN) + '"}').encode(), {}, "Unauthorized"),
        (400, json.dumps({"email": [f"is {TOKEN}"], TOKEN: ["x"]}).encode(), {}, "Bad Request"),
        (502, b"<html>" + b" " * 104 + TOKEN.encode() + b"</html>" + b"x" * 2000, {}, "Bad Gateway"),
        (502, b"<html>" + b"\n" * 900 + TOKEN.encode() + b"</html>" + b"x" * 2000, {}, "Bad Gateway"),
    ],
    ids=[
        "reason phrase",
        "location userinfo",
        "location host",
        "escaped detail",
        "field errors",
        "snippet straddling the cut",
        "whitespace collapsed into view",
    ],
)
def test_no_part_of_the_token_survives(status, body, headers, reason):
    text = everything(scrubbed(status, body, headers, reason))
    assert TOKEN not in text
    assert TOKEN[:12] not in text


def test_a_huge_detail_is_capped():
    exc = scrubbed(400, json.dumps({"detail": "x" * (15 << 20)}).encode())
    assert len(str(exc)) <= MAX_MESSAGE_CHARS and len(exc.detail) <= MAX_DETAIL_CHARS


def test_a_huge_field_error_body_is_capped():
    exc = scrubbed(400, json.dumps({f"f{i}": ["y" * 10_000] for i in range(1000)}).encode())
    assert isinstance(exc, PiriodValidationError)
    assert len(str(exc)) <= MAX_MESSAGE_CHARS and len(exc.errors) <= 50
    assert all(len(m) <= 300 for messages in exc.errors.values() for m in messages)


def test_a_deeply_nested_error_body_is_just_text():
    exc = scrubbed(404, b"[" * 100_000)
    assert "non-JSON body" in str(exc)


def test_snippet_keeps_short_bodies_whole():
    assert snippet(b"<h1>Bad   Gateway</h1>") == "<h1>Bad Gateway</h1>"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"results": [', PiriodDecodeError),
        (b"<html>", PiriodDecodeError),
        (b'{"total": NaN}', PiriodResponseError),
        (b'{"total": -Infinity}', PiriodResponseError),
        (b"[" * 100_000 + b"]" * 100_000, PiriodResponseError),
    ],
)
def test_undecodable_bodies_are_typed_and_only_glitches_are_retried(body, error):
    with pytest.raises(error) as excinfo:
        decode_json(body, "GET", "/invoices/", 200)
    assert (type(excinfo.value) is PiriodDecodeError) == (error is PiriodDecodeError)


def test_exact_money_comes_out_of_decoding():
    from decimal import Decimal

    assert decode_json(b'{"total": 123456789012345.67}', "GET", "/invoices/", 200)["total"] == Decimal(
        "123456789012345.67"
    )
