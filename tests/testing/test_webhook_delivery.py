"""The emulator delivers signed webhooks like Piriod: one per created object, retried, disabled, with faults."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from airflow_provider_piriod.testing import PiriodEmulator
from airflow_provider_piriod.webhooks.signature import is_authentic, signature

pytestmark = pytest.mark.piriod_emulator(customers=5)

SECRET = "whsecret_3f9a0c1d2e"
FAST = {"retry_delay": 0.05}


class Receiver:
    """A webhook receiver on loopback: answers the scripted statuses (then ``default``), records every call."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.default = 200
        self.hang = False
        self.released = threading.Event()
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                call = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "body_seconds": time.monotonic() - arrived,
                    "time": time.monotonic(),
                }
                with receiver.lock:
                    receiver.calls.append(call)
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                if receiver.hang:
                    receiver.released.wait(30)
                    return
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/piriod/webhooks/piriod_default"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="test-webhook-receiver")

    def bodies(self) -> list[dict]:
        return [json.loads(call["body"]) for call in self.calls]

    def wait(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"only {len(self.calls)} of {count} deliveries arrived"
            time.sleep(0.01)
        return self.calls


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.released.set()
    receiver.server.shutdown()
    receiver.server.server_close()
    receiver.thread.join(5)


def call(emulator, method, path, body=None, timeout=10):
    headers = {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
    return requests.request(method, f"{emulator.url}{path}", json=body, headers=headers, timeout=timeout)


def a_customer(emulator):
    response = call(emulator, "POST", "/customers/", {"name": "Comercial Andes SpA"})
    assert response.status_code == 201, response.text
    return response.json()


def wait_state(emulator, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        state = emulator.webhook()
        if check(state):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.02)


def refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connecting is refused
    return f"http://127.0.0.1:{port}/hook"


# ------------------------------------------------------------------ what a delivery is


def test_an_api_create_delivers_a_signed_json_body_with_event_then_object_id(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET)
    customer = a_customer(piriod_emulator)
    (got,) = receiver.wait(1)
    assert got["path"] == "/piriod/webhooks/piriod_default"
    expected = {"event": "customer.created", "object_id": customer["id"]}
    assert got["body"] == json.dumps(expected).encode()
    payload = json.loads(got["body"])
    assert list(payload) == ["event", "object_id"]
    assert got["headers"]["content-type"] == "application/json"
    assert got["headers"]["x-piriod-signature"] == signature(SECRET, expected)
    assert is_authentic(SECRET, payload, got["headers"]["x-piriod-signature"])
    (attempt,) = piriod_emulator.wait_for_webhooks(1)
    assert attempt | {"ok": True, "status": 200, "code": 200, "attempt": 1} == attempt
    assert (attempt["event"], attempt["object_id"], attempt["signature"]) == (
        "customer.created",
        customer["id"],
        got["headers"]["x-piriod-signature"],
    )


def test_every_kind_of_api_create_is_delivered_once_in_creation_order(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET)
    customer = a_customer(piriod_emulator)
    invoice = call(piriod_emulator, "POST", "/invoices/", {"customer": customer["id"]}).json()
    subscription = call(piriod_emulator, "POST", "/subscriptions/", {"customer": customer["id"]}).json()
    payment = call(piriod_emulator, "POST", "/payments/", {"customer": customer["id"], "amount": "10"}).json()
    call(piriod_emulator, "PATCH", f"/customers/{customer['id']}/", {"name": "Otro nombre"})  # not a create
    receiver.wait(4)
    time.sleep(0.2)
    assert receiver.bodies() == [
        {"event": "customer.created", "object_id": customer["id"]},
        {"event": "invoice.created", "object_id": invoice["id"]},
        {"event": "subscription.created", "object_id": subscription["id"]},
        {"event": "payment.created", "object_id": payment["id"]},
    ]
    assert all(is_authentic(SECRET, json.loads(c["body"]), c["headers"]["x-piriod-signature"]) for c in receiver.calls)


def test_control_api_creates_are_delivered_too_but_not_other_resources_or_workspaces(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET)
    made = [
        ("customer.created", piriod_emulator.create("customers")),
        ("invoice.created", piriod_emulator.create("invoices")),
        ("payment.created", piriod_emulator.create("payments")),
        ("subscription.created", piriod_emulator.create("subscriptions", test_mode=True)),
    ]
    piriod_emulator.create("creditnotes")
    piriod_emulator.create("plans")
    other = piriod_emulator.info()["other_workspace"]
    piriod_emulator.create("customers", workspace=other)
    receiver.wait(4)
    time.sleep(0.3)
    assert receiver.bodies() == [{"event": event, "object_id": str(obj["id"])} for event, obj in made]
    assert len(piriod_emulator.webhook_deliveries()) == 4


def test_a_scheduled_create_is_delivered_when_it_happens(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET)
    scheduled = piriod_emulator.create("payments", after_requests=1)
    time.sleep(0.2)
    assert receiver.calls == []
    call(piriod_emulator, "GET", "/customers/")
    receiver.wait(1)
    assert receiver.bodies() == [{"event": "payment.created", "object_id": scheduled["id"]}]


def test_only_the_chosen_events_are_delivered(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET, events=["payment.created"])
    piriod_emulator.create("customers")
    payment = piriod_emulator.create("payments")
    piriod_emulator.create("invoices")
    receiver.wait(1)
    time.sleep(0.3)
    assert receiver.bodies() == [{"event": "payment.created", "object_id": payment["id"]}]


def test_nothing_is_sent_after_the_webhook_is_removed(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET)
    piriod_emulator.clear_webhook()
    piriod_emulator.create("customers")
    time.sleep(0.3)
    assert receiver.calls == []
    assert piriod_emulator.webhook()["registered"] is False


@pytest.mark.piriod_emulator(webhook={"url": "http://127.0.0.1:9/hook", "secret": SECRET, "retries": 0})
def test_the_marker_registers_a_webhook_at_start(piriod_emulator):
    state = piriod_emulator.webhook()
    assert (state["url"], state["secret"], state["events"], state["retries"]) == (
        "http://127.0.0.1:9/hook",
        SECRET,
        None,
        0,
    )
    assert (state["retry_delay"], state["timeout"], state["disabled"]) == (0.5, 6.0, False)


@pytest.mark.parametrize(
    "body",
    [
        {"secret": SECRET},
        {"url": "ftp://x/", "secret": SECRET},
        {"url": "http://127.0.0.1:1/", "secret": ""},
        {"url": "http://127.0.0.1:1/", "secret": SECRET, "events": ["customer.deleted"]},
        {"url": "http://127.0.0.1:1/", "secret": SECRET, "faults": {"explode": True}},
        {"url": "http://127.0.0.1:1/", "secret": SECRET, "retries": -1},
        {"url": "http://127.0.0.1:1/", "secret": SECRET, "colour": "red"},
    ],
)
def test_a_bad_webhook_registration_is_a_400(piriod_emulator, body):
    response = requests.put(f"{piriod_emulator.url}/__emulator__/webhooks", json=body, timeout=10)
    assert response.status_code == 400, response.text


# ------------------------------------------------------------------ retries and disabling


def test_a_failed_delivery_is_retried_until_a_2xx(piriod_emulator, receiver):
    receiver.statuses = [500, 302]  # a 3xx is a failure too
    piriod_emulator.set_webhook(receiver.url, SECRET, retry_delay=0.2)
    customer = piriod_emulator.create("customers")
    attempts = piriod_emulator.wait_for_webhooks(1)
    assert [(a["attempt"], a["code"], a["ok"]) for a in attempts] == [(1, 500, False), (2, 302, False), (3, 200, True)]
    assert {a["object_id"] for a in attempts} == {customer["id"]}
    assert len({c["body"] for c in receiver.calls}) == 1
    gaps = [later["time"] - earlier["time"] for earlier, later in zip(receiver.calls, receiver.calls[1:], strict=False)]
    assert all(gap >= 0.18 for gap in gaps), gaps
    assert piriod_emulator.webhook()["disabled"] is False


def test_an_event_gets_at_most_three_retries(piriod_emulator, receiver):
    receiver.statuses = [500, 502, 503, 504]
    piriod_emulator.set_webhook(receiver.url, SECRET, **FAST)
    piriod_emulator.create("customers")
    second = piriod_emulator.create("customers")
    receiver.wait(5)
    time.sleep(0.3)
    attempts = piriod_emulator.webhook_deliveries()
    assert [(a["attempt"], a["code"]) for a in attempts] == [(1, 500), (2, 502), (3, 503), (4, 504), (1, 200)]
    assert attempts[-1]["object_id"] == second["id"]
    assert piriod_emulator.webhook()["disabled"] is False  # three different codes never disable it


def test_the_same_failing_code_three_times_disables_the_webhook_until_put_again(piriod_emulator, receiver):
    receiver.default = 503
    piriod_emulator.set_webhook(receiver.url, SECRET, **FAST)
    piriod_emulator.create("customers")
    state = wait_state(piriod_emulator, lambda s: s["disabled"])
    assert state["disabled_code"] == 503
    assert [(a["attempt"], a["code"]) for a in state["deliveries"]] == [(1, 503), (2, 503), (3, 503)]
    piriod_emulator.create("payments")
    time.sleep(0.3)
    assert len(receiver.calls) == 3
    assert piriod_emulator.webhook()["missed"] == 1
    receiver.default = 200
    piriod_emulator.set_webhook(receiver.url, SECRET, **FAST)  # re-enabled by hand
    assert piriod_emulator.webhook()["disabled"] is False
    payment = piriod_emulator.create("payments")
    receiver.wait(4)
    assert receiver.bodies()[-1] == {"event": "payment.created", "object_id": payment["id"]}


def test_the_same_code_counts_across_events(piriod_emulator, receiver):
    receiver.statuses = [500, 500, 200, 500, 500, 500]
    piriod_emulator.set_webhook(receiver.url, SECRET, **FAST)
    piriod_emulator.create("customers")
    piriod_emulator.create("customers")
    state = wait_state(piriod_emulator, lambda s: s["disabled"])
    assert [a["code"] for a in state["deliveries"]] == [500, 500, 200, 500, 500, 500]
    assert state["disabled_code"] == 500


def test_a_refusing_url_is_disabled_after_three_refusals(piriod_emulator):
    piriod_emulator.set_webhook(refused_url(), SECRET, **FAST)
    piriod_emulator.create("customers")
    state = wait_state(piriod_emulator, lambda s: s["disabled"])
    assert state["disabled_code"] == "refused"
    assert [(a["code"], a["status"], a["ok"]) for a in state["deliveries"]] == [("refused", None, False)] * 3


def test_a_receiver_that_does_not_answer_in_time_is_a_timeout(piriod_emulator, receiver):
    receiver.hang = True
    piriod_emulator.set_webhook(receiver.url, SECRET, timeout=0.3, **FAST)
    piriod_emulator.create("customers")
    state = wait_state(piriod_emulator, lambda s: s["disabled"])
    assert state["disabled_code"] == "timeout"
    assert all(0.25 <= a["seconds"] < 2 for a in state["deliveries"])


def test_the_api_answers_are_not_slowed_by_a_receiver_that_hangs(piriod_emulator, receiver):
    receiver.hang = True
    piriod_emulator.set_webhook(receiver.url, SECRET)  # the real 6 s timeout
    for _ in range(5):
        started = time.monotonic()
        a_customer(piriod_emulator)
        piriod_emulator.create("payments")
        call(piriod_emulator, "GET", "/customers/")
        assert time.monotonic() - started < 1.0
    receiver.wait(1)
    assert piriod_emulator.webhook()["pending"] >= 9  # they queue behind the one in flight


def test_stopping_the_emulator_stops_a_delivery_in_flight(receiver):
    receiver.hang = True
    before = set(threading.enumerate())
    with PiriodEmulator(customers=2) as emulator:
        emulator.set_webhook(receiver.url, SECRET)
        emulator.create("customers")
        receiver.wait(1)
        started = time.monotonic()
    assert time.monotonic() - started < 5
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not [t for t in left if "process_request_thread" not in t.name]  # the receiver's own may still hang


# ------------------------------------------------------------------ faults


def test_bad_signature_sends_a_wrong_signature(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET, faults={"bad_signature": True})
    customer = piriod_emulator.create("customers")
    (got,) = receiver.wait(1)
    payload = json.loads(got["body"])
    assert payload == {"event": "customer.created", "object_id": customer["id"]}
    header = got["headers"]["x-piriod-signature"]
    assert len(header) == 64 and int(header, 16) >= 0
    assert not is_authentic(SECRET, payload, header)
    assert piriod_emulator.wait_for_webhooks(1)[0]["faults"] == ["bad_signature"]


def test_duplicate_delivers_every_event_twice(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET, faults={"duplicate": True})
    first = piriod_emulator.create("customers")
    second = piriod_emulator.create("invoices")
    receiver.wait(4)
    time.sleep(0.3)
    one = {"event": "customer.created", "object_id": first["id"]}
    two = {"event": "invoice.created", "object_id": second["id"]}
    assert receiver.bodies() == [one, one, two, two]
    assert all(is_authentic(SECRET, json.loads(c["body"]), c["headers"]["x-piriod-signature"]) for c in receiver.calls)


def test_slow_trickles_the_body_over_the_given_seconds(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET, faults={"slow": 1.0})
    customer = piriod_emulator.create("customers")
    (got,) = receiver.wait(1)
    assert 0.8 <= got["body_seconds"] < 3
    assert json.loads(got["body"]) == {"event": "customer.created", "object_id": customer["id"]}
    (attempt,) = piriod_emulator.wait_for_webhooks(1)
    assert attempt["ok"] and attempt["seconds"] >= 0.8


def test_reset_clears_the_deliveries_but_keeps_the_webhook(piriod_emulator, receiver):
    piriod_emulator.set_webhook(receiver.url, SECRET)
    piriod_emulator.create("customers")
    piriod_emulator.wait_for_webhooks(1)
    piriod_emulator.reset()
    assert piriod_emulator.webhook_deliveries() == []
    piriod_emulator.create("customers")
    assert len(piriod_emulator.wait_for_webhooks(1)) == 1


def test_a_child_process_emulator_delivers_too(receiver):
    with PiriodEmulator(customers=2, in_process=False, webhook={"url": receiver.url, "secret": SECRET}) as emulator:
        customer = emulator.create("customers")
        (got,) = receiver.wait(1)
        assert emulator.wait_for_webhooks(1)[0]["ok"]
    assert json.loads(got["body"]) == {"event": "customer.created", "object_id": customer["id"]}
    assert is_authentic(SECRET, json.loads(got["body"]), got["headers"]["x-piriod-signature"])
