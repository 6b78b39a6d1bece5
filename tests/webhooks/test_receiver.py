"""The webhook receiver over real HTTP on loopback: authentic deliveries become asset events, the rest is refused."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import requests

from airflow_provider_piriod.webhooks.signature import signature, signed_message

pytestmark = pytest.mark.usefixtures("airflow_db")
airflow3 = pytest.mark.airflow3

SECRET = "whsecret_" + "s3cr3t" * 6
OTHER_SECRET = "whsecret_other0000000000"
TOKEN = "tok_receiver_" + "x" * 20
URI = "piriod://piriod_default/payments"
PAYMENT = {"event": "payment.created", "object_id": "pay_01H8XYZ"}


def connection(**extra) -> str:
    conn = {"conn_type": "piriod", "host": "https://api.piriod.com", "login": "acc_1", "password": TOKEN}
    return json.dumps({**conn, "extra": extra})


@pytest.fixture
def receiver(monkeypatch):
    """The plugin's app served by uvicorn on loopback; piriod_default has SECRET, piriod_other OTHER_SECRET."""
    import uvicorn

    from airflow_provider_piriod.webhooks import receiver
    from airflow_provider_piriod.webhooks.receiver import create_app

    monkeypatch.setattr(receiver, "_last_logged", {})  # each test sees its own refusals logged
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", connection(webhook_secret=SECRET))
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_OTHER", connection(webhook_secret=OTHER_SECRET))
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_NOSECRET", connection())
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_UNSIGNED", connection(allow_unsigned_webhooks=True))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AN_HTTP_CONN", json.dumps({"conn_type": "http", "extra": {"webhook_secret": SECRET}})
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def payments_asset():
    """The asset a DAG scheduled on payments would have registered, with no events yet."""
    from sqlalchemy import delete

    from airflow.models.asset import AssetActive, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(delete(AssetEvent))
        model = session.query(AssetModel).filter_by(uri=URI).one_or_none()
        if model is None:
            model = AssetModel(uri=URI, name=URI, group="asset")
            session.add(model)
            session.flush()
            session.add(AssetActive.for_asset(model))
    return URI


def events() -> list[dict]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [event.extra for event in session.query(AssetEvent).order_by(AssetEvent.id)]


def deliver(url: str, payload, *, secret: str | None = SECRET, sig: str | None = None, conn: str = "piriod_default"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sig is None and secret is not None and isinstance(payload, dict):
        sig = signature(secret, payload)
    if sig is not None:
        headers["x-piriod-signature"] = sig
    return requests.post(f"{url}/{conn}", data=body, headers=headers, timeout=10)


# ---------------------------------------------------------------------- the signature


def test_the_signed_message_is_the_payloads_values_concatenated_in_order():
    assert signed_message(PAYMENT) == b"payment.createdpay_01H8XYZ"
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"payment.createdpay_01H8XYZ", hashlib.sha256).hexdigest()
    assert signature(SECRET, PAYMENT) == expected


# ---------------------------------------------------------------------- authentic deliveries


@airflow3
def test_an_authentic_delivery_becomes_one_asset_event(receiver, payments_asset):
    started = time.monotonic()
    answer = deliver(receiver, PAYMENT)
    assert answer.status_code == 200 and answer.json() == {"status": "recorded"}
    assert time.monotonic() - started < 6  # Piriod's limit
    assert events() == [{"event": "payment.created", "object_id": "pay_01H8XYZ", "resource": "payments"}]


@airflow3
def test_a_delivery_piriod_repeats_is_recorded_once(receiver, payments_asset):
    assert deliver(receiver, PAYMENT).json() == {"status": "recorded"}
    again = deliver(receiver, PAYMENT)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert len(events()) == 1
    assert deliver(receiver, {"event": "payment.created", "object_id": "pay_other"}).json() == {"status": "recorded"}


@airflow3
def test_an_uppercase_signature_is_the_same_signature(receiver, payments_asset):
    assert deliver(receiver, PAYMENT, sig=signature(SECRET, PAYMENT).upper()).status_code == 200


@airflow3
def test_an_event_the_registry_cannot_map_is_acknowledged_and_logged(receiver, payments_asset, caplog):
    caplog.set_level(logging.WARNING)
    payload = {"event": "widget.created", "object_id": "wid_1"}
    answer = deliver(receiver, payload)
    assert answer.status_code == 200 and answer.json() == {"status": "ignored"}  # three non-2xx disable the webhook
    assert "'widget.created'" in caplog.text
    assert events() == []


@airflow3
def test_a_delivery_no_dag_waits_for_is_acknowledged(receiver, payments_asset):
    from sqlalchemy import delete

    from airflow.models.asset import AssetActive
    from airflow.utils.session import create_session

    with create_session() as session:  # earlier tests in the run may have registered the customers asset
        session.execute(delete(AssetActive).where(AssetActive.uri == "piriod://piriod_default/customers"))
    answer = deliver(receiver, {"event": "customer.created", "object_id": "cus_1"})
    assert answer.status_code == 200 and "no DAG" in answer.json()["status"]


# ---------------------------------------------------------------------- refusals


REFUSED = {"detail": "not accepted"}


@airflow3
@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"sig": "0" * 64}, "a wrong signature"),
        ({"sig": None, "secret": None}, "no signature"),
        ({"sig": signature(SECRET, PAYMENT)[:32]}, "a truncated signature"),
        ({"sig": signature(SECRET, PAYMENT) + "00"}, "a longer signature"),
        ({"secret": OTHER_SECRET}, "another connection's secret"),
        ({"sig": signature(SECRET, {"event": "payment.created", "object_id": "pay_other"})}, "another payload's"),
        ({"sig": "é" * 64}, "not hex"),
        ({"conn": "piriod_missing"}, "an unknown connection"),
        ({"conn": "an_http_conn"}, "a connection of another type"),
        ({"conn": "piriod_nosecret"}, "a connection without webhook_secret"),
        ({"conn": "..%2F..%2Fetc"}, "a conn id that cannot be one"),
    ],
)
def test_every_failed_authentication_gets_the_same_401(receiver, payments_asset, kwargs, why):
    answer = deliver(receiver, PAYMENT, **kwargs)
    assert (answer.status_code, answer.json()) == (401, REFUSED), why
    assert events() == []


@airflow3
def test_without_a_secret_the_log_says_how_to_set_one(receiver, payments_asset, caplog):
    caplog.set_level(logging.WARNING)
    deliver(receiver, PAYMENT, conn="piriod_nosecret")
    assert "webhook_secret" in caplog.text and "whsecret_" in caplog.text


@airflow3
def test_allow_unsigned_webhooks_accepts_loopback_deliveries_without_a_signature(receiver, payments_asset):
    answer = deliver(receiver, PAYMENT, secret=None, conn="piriod_unsigned")
    assert answer.status_code == 200


@airflow3
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"event": "payment.created"}).encode(),
        json.dumps({**PAYMENT, "extra": "x"}).encode(),
        json.dumps({"event": 1, "object_id": "pay_1"}).encode(),
        json.dumps({"event": "payment.created", "object_id": ["pay_1"]}).encode(),
        json.dumps({"event": "payment.created", "object_id": "pay\n1"}).encode(),
        json.dumps({"event": "PAYMENT CREATED", "object_id": "pay_1"}).encode(),
        b"[" * 30_000 + b"]" * 30_000,  # deep, inside 64 KiB
        b'{"event": "payment.created", "object_id": "\xff"}',
    ],
)
def test_what_is_not_a_piriod_delivery_is_a_400(receiver, payments_asset, body):
    answer = deliver(receiver, body, sig="0" * 64)
    assert answer.status_code == 400 and answer.json() == {"detail": "not a Piriod webhook delivery"}


@airflow3
def test_a_body_over_64_kib_is_a_413_declared_or_not(receiver, payments_asset):
    big = json.dumps({"event": "payment.created", "object_id": "p" * 70_000}).encode()
    assert deliver(receiver, big, sig="0" * 64).status_code == 413

    def chunks():
        for _ in range(80):
            yield b" " * 1024

    answer = requests.post(f"{receiver}/piriod_default", data=chunks(), timeout=10)  # chunked: no Content-Length
    assert answer.status_code == 413


@airflow3
def test_a_trickled_body_is_cut_off_after_5_seconds(receiver, payments_asset):
    host, port = receiver.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(b"POST /webhooks/piriod_default HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() - started < 12:
            sock.settimeout(1)
            try:
                answer += sock.recv(4096)
            except TimeoutError:
                sock.sendall(b" ")  # one byte a second: never done
    assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
    assert 4.5 < time.monotonic() - started < 10


@airflow3
def test_neither_the_secret_nor_the_token_appears_in_answers_or_logs(receiver, payments_asset, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    answers = [
        deliver(receiver, PAYMENT),
        deliver(receiver, PAYMENT, sig="0" * 64),
        deliver(receiver, PAYMENT, conn="piriod_nosecret"),
        deliver(receiver, {"event": "widget.created", "object_id": SECRET}),
    ]
    out, err = capfd.readouterr()
    text = caplog.text + out + err + "".join(a.text + str(a.headers) for a in answers)
    assert SECRET not in text and TOKEN not in text
    assert json.dumps(events()).count(SECRET) == 0


# ---------------------------------------------------------------------- the plugin


@airflow3
def test_the_plugin_mounts_the_receiver_under_piriod_and_is_found_by_its_entry_point():
    from importlib.metadata import entry_points

    from airflow_provider_piriod.plugins import PiriodPlugin

    (found,) = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "piriod"]
    assert found.load() is PiriodPlugin
    (app,) = PiriodPlugin.fastapi_apps
    assert app["url_prefix"] == "/piriod"
    assert [route.path for route in app["app"].routes if "webhooks" in route.path] == ["/webhooks/{conn_id:path}"]


@airflow3
def test_the_connection_test_says_how_to_turn_webhooks_on(piriod_emulator, monkeypatch):
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    ok, message = PiriodHook().test_connection()
    assert ok and "set the extra webhook_secret" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps({**piriod_emulator.connection, "extra": {"webhook_secret": SECRET}})
    )
    ok, message = PiriodHook().test_connection()
    assert ok and "Webhooks: on, at POST /piriod/webhooks/piriod_default" in message and SECRET not in message


@pytest.mark.skipif("__import__('airflow_provider_piriod.compat').compat.airflow_v3()", reason="Airflow 2.11 only")
def test_on_airflow_2_the_plugin_registers_nothing():
    from airflow_provider_piriod.plugins import PiriodPlugin

    assert PiriodPlugin.fastapi_apps == []


def test_only_one_split_of_a_signed_message_names_a_known_event():
    """The signature covers event + object_id concatenated: a genuine delivery's signature also fits every other
    split of the same text, so at most one split may be an event the receiver records."""
    from airflow_provider_piriod.resources import EVENT_ACTIONS, EVENT_OBJECTS, resource_for_event

    text = "payment.createdpay_1"
    known = [text[:cut] for cut in range(1, len(text)) if resource_for_event(text[:cut])]
    assert known == ["payment.created"]
    for action in EVENT_ACTIONS:
        assert not any(other != action and other.startswith(action) for other in EVENT_ACTIONS)
    for obj in EVENT_OBJECTS:
        assert not any(other != obj and other.startswith(obj + ".") for other in EVENT_OBJECTS)


@airflow3
def test_the_event_goes_to_the_active_asset_of_the_uri(receiver, payments_asset):
    """Airflow keeps one active asset per URI; an older one of another name (a renamed asset) gets nothing."""
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(AssetModel(uri=URI, name="piriod_payments_renamed", group="asset"))
    try:
        assert deliver(receiver, PAYMENT).json() == {"status": "recorded"}
        assert len(events()) == 1
    finally:
        with create_session() as session:
            session.query(AssetModel).filter_by(name="piriod_payments_renamed").delete()


# ---------------------------------------------------------------------- the database fails or is slow


@airflow3
def test_a_delivery_the_database_cannot_record_gets_a_503_and_an_error_line(
    receiver, payments_asset, monkeypatch, caplog
):
    """Not recorded: a failure for Piriod, which retries; the log says so without the secret."""
    from airflow_provider_piriod.webhooks import asset_events

    def broken(*args, **kwargs):
        raise RuntimeError(f"could not connect to server (secret {SECRET})")

    monkeypatch.setattr(asset_events, "record_delivery", broken)
    caplog.set_level(logging.INFO)
    answer = deliver(receiver, PAYMENT)
    assert answer.status_code == 503 and answer.json() == {"detail": "not recorded, send it again"}
    assert "not recorded" in caplog.text and "RuntimeError" in caplog.text
    assert SECRET not in caplog.text and SECRET not in answer.text


@airflow3
def test_a_database_slower_than_piriods_limit_gets_a_503_in_time_and_the_retry_is_deduplicated(
    receiver, payments_asset, monkeypatch
):
    from airflow_provider_piriod.webhooks import asset_events

    record = asset_events.record_delivery

    def slow(*args, **kwargs):
        time.sleep(5)
        return record(*args, **kwargs)

    monkeypatch.setattr(asset_events, "record_delivery", slow)
    started = time.monotonic()
    answer = deliver(receiver, PAYMENT)
    assert answer.status_code == 503 and time.monotonic() - started < 5.5  # inside Piriod's 6 s
    monkeypatch.setattr(asset_events, "record_delivery", record)
    deadline = time.monotonic() + 10
    while not events() and time.monotonic() < deadline:  # the slow recording still lands
        time.sleep(0.1)
    assert deliver(receiver, PAYMENT).json() == {"status": "duplicate"}
    assert len(events()) == 1
