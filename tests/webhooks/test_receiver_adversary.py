"""Adversarial tests of the webhook receiver over real HTTP on loopback (forgery, floods, lies, slow clients).

A test named ``..._should_...`` states what ought to happen and fails while the receiver does otherwise; the
others pin down behaviour that holds today. Timing medians are printed by an opt-in test (PIRIOD_TIMING=1),
never asserted.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from airflow_provider_piriod.webhooks.signature import signature

from .test_receiver import PAYMENT, SECRET, TOKEN, connection, deliver, events, payments_asset, receiver

__all__ = ["payments_asset", "receiver"]  # fixtures, imported for their use here

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.airflow3]

SIG = signature(SECRET, PAYMENT)


def _hostport(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].split("/")[0].split(":")
    return host, int(port)


def raw(url: str, request: bytes, *, wait: float = 8.0) -> bytes:
    """Send raw bytes, read until the answer's headers and some body arrive (or ``wait`` passes)."""
    with socket.create_connection(_hostport(url), timeout=wait) as sock:
        sock.sendall(request)
        answer = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and (b"}" in answer or b"Content-Length: 0" in answer):
                break
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def body_of(payload: dict | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


# ---------------------------------------------------------------------- forgery


def test_a_genuine_signature_does_not_fit_the_same_values_in_another_key_order(receiver, payments_asset):
    reordered = b'{"object_id": "pay_01H8XYZ", "event": "payment.created"}'
    assert deliver(receiver, reordered, sig=SIG).status_code == 400  # event first, as Piriod sends it
    assert events() == []


def test_whitespace_and_unicode_escapes_keep_a_genuine_signature(receiver, payments_asset):
    """The signature covers the decoded values, not the bytes: a re-encoded body is the same delivery."""
    body = b'  {\n "event" :"payment\\u002ecreated" ,\t"object_id":"pay\\u005f01H8XYZ"}  '
    answer = deliver(receiver, body, sig=SIG)
    assert answer.json() == {"status": "recorded"}
    assert deliver(receiver, body_of(PAYMENT), sig=SIG).json() == {"status": "duplicate"}
    assert len(events()) == 1


def test_moving_the_split_point_of_a_genuine_delivery_records_nothing(receiver, payments_asset, caplog):
    """``payment.createdpay`` + ``_01H8XYZ`` signs the same text as the genuine delivery: accepted (200, ignored)
    but no asset event. The "not mapped" WARNING it logs is not rate limited: a replayed split floods the log."""
    caplog.set_level(logging.WARNING)
    for cut in ("payment.createdpay", "payment.createdpay_01H8XY", "payment.create"):
        split = {"event": cut, "object_id": "payment.createdpay_01H8XYZ"[len(cut) :]}
        answer = deliver(receiver, split, sig=SIG)
        assert answer.status_code in (200, 400) and answer.json() != {"status": "recorded"}
    for _ in range(20):
        deliver(receiver, {"event": "payment.createdpay", "object_id": "_01H8XYZ"}, sig=SIG)
    assert events() == []
    assert caplog.text.count("is not one this provider maps") == 22  # one per delivery: no rate limit


def test_a_reordered_split_should_not_record_another_event(receiver, payments_asset):
    """Key order is free and values are concatenated without separator: a genuine delivery whose object id ends
    with an event name (``invoice.created`` on ``inv_1.payment.created``) signs
    ``invoice.createdinv_1.payment.created``, which is also
    ``{"object_id": "invoice.createdinv_1.", "event": "payment.created"}``: a forged payment."""
    genuine = {"event": "invoice.created", "object_id": "inv_1.payment.created"}
    forged = b'{"object_id": "invoice.createdinv_1.", "event": "payment.created"}'
    answer = deliver(receiver, forged, sig=signature(SECRET, genuine))
    assert answer.status_code == 400, answer.json()  # refused before the signature: event must come first
    assert events() == []


def test_duplicate_keys_sign_and_use_the_last_value(receiver, payments_asset):
    """Both decoders keep the last duplicate in the first key's place: what is signed is what is recorded."""
    body = b'{"event": "a.b", "event": "payment.created", "object_id": "x", "object_id": "pay_01H8XYZ"}'
    assert deliver(receiver, body, sig=SIG).json() == {"status": "recorded"}
    assert events() == [{"event": "payment.created", "object_id": "pay_01H8XYZ", "resource": "payments"}]
    wrong = b'{"event": "a.b", "event": "payment.created", "object_id": "pay_01H8XYZ"}'
    sig_of_first = signature(SECRET, {"event": "a.b", "object_id": "pay_01H8XYZ"})
    assert deliver(receiver, wrong, sig=sig_of_first).status_code == 401


@pytest.mark.parametrize(
    ("object_id", "expected"),
    [
        (2**63, 400),
        (2**63 - 1, 200),
        (10**400, 400),
        (-1, 400),
        (1.5, 400),
        (1e300, 400),
        (True, 400),
        (False, 400),
        (None, 400),
        ("0", 200),
        (0, 200),
        ("", 400),
        ("p" * 201, 400),
        ("pay\u200b1", 400),  # zero-width space is not printable
        ("pay_\u00e9", 200),
    ],
)
def test_object_id_values(receiver, payments_asset, object_id, expected):
    payload = {"event": "payment.created", "object_id": object_id}
    body = json.dumps(payload).encode()
    sig = signature(SECRET, payload)
    answer = deliver(receiver, body, sig=sig)
    assert answer.status_code == expected, answer.text
    if expected == 200:
        assert events()[-1]["object_id"] == str(object_id)


def test_an_int_and_a_string_object_id_are_one_delivery(receiver, payments_asset):
    assert deliver(receiver, {"event": "payment.created", "object_id": 7}).json() == {"status": "recorded"}
    assert deliver(receiver, {"event": "payment.created", "object_id": "7"}).json() == {"status": "duplicate"}


def test_a_captured_delivery_replayed_after_the_window_is_recorded_again(receiver, payments_asset, monkeypatch):
    """No timestamp or nonce is signed: whoever saw one delivery can re-trigger the DAG every DEDUPE_SECONDS."""
    from airflow_provider_piriod.webhooks import asset_events

    assert deliver(receiver, PAYMENT).json() == {"status": "recorded"}
    monkeypatch.setattr(asset_events, "DEDUPE_SECONDS", 0.0)
    time.sleep(0.05)
    assert deliver(receiver, PAYMENT).json() == {"status": "recorded"}
    assert len(events()) == 2


# ---------------------------------------------------------------------- refusals that are not the identical 401


@pytest.mark.parametrize(
    "extra",
    [
        {"webhook_secret": 12345},
        {"webhook_secret": SECRET, "allow_unsigned_webhooks": "maybe"},
        {"webhook_secret": ["whsecret_a"]},
    ],
)
def test_a_misconfigured_connection_should_get_the_same_401(receiver, payments_asset, monkeypatch, caplog, extra):
    """webhook_options raises PiriodConfigError (not Refused) for a bad extra: the answer is a 500, which tells a
    prober the connection exists, and three of them make Piriod disable the webhook."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_BROKEN", connection(**extra))
    answer = deliver(receiver, PAYMENT, conn="piriod_broken")
    assert SECRET not in caplog.text + answer.text and TOKEN not in caplog.text + answer.text
    assert (answer.status_code, answer.text) == (401, '{"detail":"not accepted"}')


@pytest.mark.parametrize(
    "conn",
    [
        ".",
        "piriod_default.",
        "piriod_default%20",
        "piriod_default%00",
        "piriod%2Fdefault",
        "piriod_default/",
        "%D1%80iriod_default",  # Cyrillic er
        "piriod_defau%C5%82t",
        "p" * 251,
        "piriod_default" + "_" * 236,
    ],
)
def test_conn_id_tricks_get_the_identical_401(receiver, payments_asset, conn):
    answer = deliver(receiver, PAYMENT, conn=conn)
    assert (answer.status_code, answer.json()) == (401, {"detail": "not accepted"})
    assert events() == []


def test_a_case_variant_of_a_conn_id_is_the_same_env_connection_but_records_nothing(receiver, payments_asset):
    """AIRFLOW_CONN_<ID> is looked up upper-cased: PIRIOD_DEFAULT authenticates with piriod_default's secret, but
    its asset URI piriod://PIRIOD_DEFAULT/payments has no asset, so nothing is recorded."""
    answer = deliver(receiver, PAYMENT, conn="PIRIOD_DEFAULT")
    assert answer.status_code == 200 and "no DAG" in answer.json()["status"]
    assert events() == []


# ---------------------------------------------------------------------- headers


def post_with_headers(url: str, headers: list[tuple[str, str | bytes]], body: bytes) -> int:
    host, port = _hostport(url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/webhooks/piriod_default")
    for name, value in [*headers, ("Content-Length", str(len(body)))]:
        conn.putheader(name, value)
    conn.endheaders(body)
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("x-piriod-signature", SIG), ("x-piriod-signature", "0" * 64)], 200),  # the first one counts
        ([("x-piriod-signature", "0" * 64), ("x-piriod-signature", SIG)], 401),
        ([("X-PIRIOD-SIGNATURE", SIG.upper())], 200),
        ([("x-piriod-signature", f"  {SIG}\t")], 200),
        ([("x-piriod-signature", f"sha256={SIG}")], 401),
        ([("x-piriod-signature", SIG[:-1] + "\u00e9".encode("latin-1").decode("latin-1"))], 401),
        ([("x-piriod-signature", b"\xff" * 64)], 401),
        ([("x-piriod-signature", "")], 401),
    ],
)
def test_signature_header_tricks(receiver, payments_asset, headers, expected):
    assert post_with_headers(receiver, headers, body_of(PAYMENT)) == expected


# ---------------------------------------------------------------------- bodies and Content-Length lies


def test_content_length_shorter_than_the_body_reads_only_what_it_declares(receiver, payments_asset):
    body = body_of(PAYMENT)
    head = f"POST /webhooks/piriod_default HTTP/1.1\r\nHost: x\r\nx-piriod-signature: {SIG}\r\n"
    answer = raw(receiver, f"{head}Content-Length: {len(body) - 3}\r\n\r\n".encode() + body)
    assert status_of(answer) == 400
    assert events() == []


@pytest.mark.parametrize(
    "content_length",
    [
        b"Content-Length: -1",
        b"Content-Length: abc",
        b"Content-Length: 5e3",
        b"Content-Length: " + b"9" * 5000,  # int() of over 4300 digits raises ValueError
        b"Content-Length: 18446744073709551617",
        b"Content-Length: 52\r\nContent-Length: 99999",
        b"Content-Length: 99999\r\nContent-Length: 52",
        b"Content-Length: 52, 52",
        b"Content-Length: 52\r\nTransfer-Encoding: chunked",
        b"Content-Length: \xb2",  # a latin-1 digit: str.isdigit() is True, int() is not
    ],
)
def test_content_length_lies_are_refused_without_a_500(receiver, payments_asset, content_length):
    body = body_of(PAYMENT)
    head = f"POST /webhooks/piriod_default HTTP/1.1\r\nHost: x\r\nx-piriod-signature: {SIG}\r\n".encode()
    answer = raw(receiver, head + content_length + b"\r\n\r\n" + body, wait=3)
    assert status_of(answer) != 500, answer[:200]
    assert events() == []


def test_read_body_should_refuse_a_unicode_digit_content_length():
    """Defence in depth for an ASGI server that passes Content-Length through unchecked: '²'.isdigit() is True
    but int('²') raises, so read_body escapes with ValueError (a 500) instead of a Refused."""
    import asyncio

    from airflow_provider_piriod.webhooks.receiver import Refused, read_body

    class FakeRequest:
        def __init__(self) -> None:
            self.headers = {"content-length": "\u00b2"}

        async def stream(self):
            yield b"{}"

    with pytest.raises(Refused):
        asyncio.run(read_body(FakeRequest()))


def test_content_length_longer_than_the_body_times_out_with_a_408(receiver, payments_asset):
    body = body_of(PAYMENT)
    head = f"POST /webhooks/piriod_default HTTP/1.1\r\nHost: x\r\nx-piriod-signature: {SIG}\r\n"
    started = time.monotonic()
    answer = raw(receiver, f"{head}Content-Length: {len(body) + 10}\r\n\r\n".encode() + body, wait=8)
    assert status_of(answer) == 408 and 4.5 < time.monotonic() - started < 8


def test_a_chunked_body_over_64_kib_in_big_chunks_is_a_413(receiver, payments_asset):
    def chunks():
        yield b'{"event": "payment.created", "object_id": "'
        yield b"p" * 200_000
        yield b'"}'

    assert requests.post(f"{receiver}/piriod_default", data=chunks(), timeout=10).status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"event": "payment.created", "object_id": "x", "z": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b'{"event": "payment.created", "object_id": ' + b"1" * 60_000 + b"}",
        b'{"event": "payment.created", "object_id": "pay_1"}' + b" " * 100 + b"{}",
        b'\xef\xbb\xbf{"event": "payment.created", "object_id": "\\ud800"}',
    ],
)
def test_hostile_json_within_64_kib_is_a_quick_400(receiver, payments_asset, body):
    started = time.monotonic()
    answer = deliver(receiver, body, sig="0" * 64)
    assert answer.status_code == 400 and time.monotonic() - started < 2


# ---------------------------------------------------------------------- slow clients and a slow database


# ---------------------------------------------------------------------- floods


def test_a_flood_of_forgeries_on_one_connection_logs_one_warning(receiver, payments_asset, caplog):
    caplog.set_level(logging.WARNING)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: deliver(receiver, PAYMENT, sig="0" * 64), range(300)))
    assert {a.status_code for a in answers} == {401}
    assert caplog.text.count("refused") == 1


def test_a_flood_of_forgeries_on_random_conn_ids_should_not_flood_the_log(receiver, payments_asset, caplog):
    """The refusal rate limit is keyed on the attacker-chosen conn id: 300 distinct ids, 300 WARNINGs."""
    caplog.set_level(logging.WARNING)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda n: deliver(receiver, PAYMENT, conn=f"nope_{n}"), range(300)))
    assert {a.status_code for a in answers} == {401}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 10, f"{len(warnings)} WARNING lines for 300 forged requests"


def test_the_event_loop_keeps_answering_while_the_threadpool_is_busy(receiver, payments_asset, monkeypatch):
    """40 slow deliveries fill anyio's threadpool; a request refused before any thread (bad conn id) is still
    answered at once, i.e. the event loop itself is not blocked."""
    from airflow_provider_piriod.webhooks import asset_events

    monkeypatch.setattr(asset_events, "record_delivery", lambda *args: time.sleep(3) or "recorded")
    with ThreadPoolExecutor(48) as pool:
        slow = [pool.submit(deliver, receiver, {"event": "payment.created", "object_id": f"p{n}"}) for n in range(45)]
        time.sleep(0.5)
        started = time.monotonic()
        assert deliver(receiver, PAYMENT, conn="..%2Fx").status_code == 401
        assert time.monotonic() - started < 1
        answers = [f.result() for f in slow]
    # those that waited for a thread past RECORD_SECONDS get a 503 (Piriod sends them again), all inside 6 s
    assert {a.status_code for a in answers} <= {200, 503} and 200 in {a.status_code for a in answers}
    assert max(a.elapsed.total_seconds() for a in answers) < 6


@pytest.mark.skipif(not os.environ.get("PIRIOD_TIMING"), reason="measurement only: PIRIOD_TIMING=1 prints medians")
def test_print_refusal_timing_medians(receiver, payments_asset, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_X", connection(webhook_secret=SECRET))
    body = body_of(PAYMENT)
    session = requests.Session()
    cases = {
        "known conn, wrong sig": ("piriod_default", "0" * 64),
        "known conn, sig wrong in last char": ("piriod_default", SIG[:-1] + ("0" if SIG[-1] != "0" else "1")),
        "known conn, no secret": ("piriod_nosecret", "0" * 64),
        "other conn type": ("an_http_conn", "0" * 64),
        "unknown conn": ("piriod_unknown", "0" * 64),
        "invalid conn id": ("bad%20id", "0" * 64),
        "valid (duplicate)": ("piriod_default", SIG),
    }
    for _ in range(50):  # warm up
        session.post(f"{receiver}/piriod_default", data=body, headers={"x-piriod-signature": "0" * 64})
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(300):
        for name, (conn, sig) in cases.items():
            started = time.perf_counter()
            session.post(f"{receiver}/{conn}", data=body, headers={"x-piriod-signature": sig})
            samples[name].append((time.perf_counter() - started) * 1e6)
    for name, values in samples.items():
        print(f"{name:40s} median {statistics.median(values):8.0f} us  p90 {sorted(values)[270]:8.0f} us")


_ = threading  # the receiver fixture runs uvicorn in a thread
