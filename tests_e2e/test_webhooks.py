"""Piriod webhooks into the deployment's API server: a new payment starts its DAG run within seconds.

The emulator delivers signed ``payment.created`` webhooks to ``/piriod/webhooks/piriod_default`` on the
API server (the connection's ``webhook_secret`` is set by scripts/e2e.sh); ``example_piriod_on_payment``
is scheduled on the payments asset and reads each payment through the hook. Forged deliveries start
nothing, and a delivery Piriod retries while the API server restarts is recorded once it is back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections import Counter
from datetime import datetime
from typing import Any

import requests
from e2e_support import (
    API,
    EMULATOR,
    api_session,
    component_log,
    poll,
    returned_values,
    start_component,
    stop_component,
)

PAYMENT_DAG = "example_piriod_on_payment"
CUSTOMER_DAG = "example_piriod_on_new_customer"  # PiriodEventTrigger, polling every 3 s here
PAYMENTS_URI = "piriod://piriod_default/payments"
RECEIVER = f"{API}/piriod/webhooks/piriod_default"
SECRET = os.environ["E2E_WEBHOOK_SECRET"]
WITHIN = 10.0  # seconds from a payment's creation to its run's first task


def emulator(method: str, route: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{EMULATOR}/__emulator__/{route}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def register_webhook(**settings: Any) -> None:
    emulator("PUT", "webhooks", json={"url": RECEIVER, "secret": SECRET, "events": ["payment.created"], **settings})


def create(resource: str) -> tuple[str, float]:
    """A new object in the emulator, and when it was made (epoch seconds)."""
    made = time.time()
    return emulator("POST", resource, json={})["id"], made


def asset_events(api: requests.Session, **asset: str) -> list[dict[str, Any]]:
    """The events of the asset with this uri or name, oldest first."""
    ((field, value),) = asset.items()
    found = api.get(f"{API}/api/v2/assets", params={f"{field}_pattern": value})
    found.raise_for_status()
    ids = [a["id"] for a in found.json()["assets"] if a[field] == value]
    events: list[dict[str, Any]] = []
    for asset_id in ids:
        response = api.get(f"{API}/api/v2/assets/events", params={"asset_id": asset_id, "limit": 100})
        response.raise_for_status()
        events.extend(response.json()["asset_events"])
    return sorted(events, key=lambda event: event["id"])


def webhook_ids(api: requests.Session) -> list[str]:
    """The object ids of the payments asset's webhook events, repeats kept (the backstop's events have none)."""
    extras = [event.get("extra") or {} for event in asset_events(api, uri=PAYMENTS_URI)]
    return [extra["object_id"] for extra in extras if "object_id" in extra]


def run_started_by(api: requests.Session, events: list[dict[str, Any]], object_id: str) -> dict[str, str] | None:
    """The DAG run an event about ``object_id`` created, if the scheduler made it yet."""
    for event in events:
        extra = event.get("extra") or {}
        ids = [extra.get("object_id"), *((extra.get("payload") or {}).get("ids") or [])]
        if object_id in ids and event.get("created_dagruns"):
            return event["created_dagruns"][0]
    return None


def first_task_start(api: requests.Session, dag_id: str, run_id: str) -> float | None:
    response = api.get(f"{API}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    response.raise_for_status()
    starts = [ti["start_date"] for ti in response.json()["task_instances"] if ti.get("start_date")]
    return min(datetime.fromisoformat(start).timestamp() for start in starts) if starts else None


def latency(api: requests.Session, dag_id: str, object_id: str, made: float, **asset: str) -> float:
    """Seconds from the object's creation to the first task of the run it started."""

    def started() -> float | None:
        run = run_started_by(api, asset_events(api, **asset), object_id)
        return None if run is None else first_task_start(api, dag_id, run["run_id"])

    return poll(f"a run of {dag_id} for {object_id}", 180, started) - made


def recorded_payments(api: requests.Session) -> list[str]:
    """What every successful run's ``record`` task returned: the payments it read through the hook."""
    return returned_values(api, PAYMENT_DAG, "record")


def unpause(api: requests.Session, dag_id: str) -> None:
    poll(f"{dag_id} to be parsed", 180, lambda: api.get(f"{API}/api/v2/dags/{dag_id}").ok)
    api.patch(f"{API}/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()


def nothing_running(api: requests.Session) -> bool:
    response = api.get(f"{API}/api/v2/dags/~/dagRuns", params={"state": "running", "limit": 1})
    response.raise_for_status()
    return response.json()["total_entries"] == 0


def test_a_payment_starts_its_run_within_seconds_forgeries_start_none_and_a_restart_loses_nothing():
    api = api_session()
    unpause(api, PAYMENT_DAG)
    unpause(api, CUSTOMER_DAG)
    poll("the customer watcher to start", 180, lambda: "Watching for new customers" in component_log("triggerer"))
    register_webhook(retries=3, retry_delay=20)

    # one payment by webhook, one customer by polling, made together: each run's start, side by side
    payment, paid_at = create("payments")
    customer, signed_up_at = create("customers")
    by_webhook = latency(api, PAYMENT_DAG, payment, paid_at, uri=PAYMENTS_URI)
    by_polling = latency(api, CUSTOMER_DAG, customer, signed_up_at, name="piriod_new_customers")
    print(
        f"creation to first task: webhook {by_webhook:.1f} s, PiriodEventTrigger (poll_interval=3) {by_polling:.1f} s"
    )
    assert by_webhook < WITHIN
    poll("the payment's run to read it", 120, lambda: payment in recorded_payments(api))

    # forgeries: another secret, no signature, a signature of other bytes; all refused, none recorded
    forged = {"event": "payment.created", "object_id": "pay_forged_e2e"}
    body = json.dumps(forged).encode()
    other = hmac.new(b"whsecret_not_the_one", b"payment.createdpay_forged_e2e", hashlib.sha256).hexdigest()
    right_for_other_bytes = hmac.new(SECRET.encode(), b"payment.createdpay_other", hashlib.sha256).hexdigest()
    for signature in (other, None, right_for_other_bytes):
        headers = {"Content-Type": "application/json", **({"x-piriod-signature": signature} if signature else {})}
        assert requests.post(RECEIVER, data=body, headers=headers, timeout=10).status_code == 401
    time.sleep(WITHIN)
    assert "pay_forged_e2e" not in webhook_ids(api)

    # the API server restarts while Piriod delivers the next payment: its retry lands once the server is back
    poll("no DAG run in flight", 300, lambda: nothing_running(api))
    stop_component("api-server")
    during, _ = create("payments")
    start_component("api-server")
    poll("the API server to answer again", 180, lambda: requests.get(f"{API}/api/v2/monitor/health", timeout=5).ok)
    api = api_session()
    poll("the retried delivery to be recorded", 120, lambda: during in webhook_ids(api))
    poll("its run to read it", 180, lambda: during in recorded_payments(api))
    state = emulator("GET", "webhooks")
    assert not state["disabled"], state
    assert Counter(webhook_ids(api)) == Counter([payment, during]), "each payment recorded once"
