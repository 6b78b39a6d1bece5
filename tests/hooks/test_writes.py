"""PiriodHook writes against the emulator: exactly once through every ambiguous failure, refusals before sending."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodInputError,
    PiriodValidationError,
)
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD


def posts(emulator, path: str) -> int:
    return sum(1 for entry in emulator.requests() if entry["method"] == "POST" and entry["path"] == path)


def api_requests(emulator) -> int:
    return len(emulator.requests())


def with_key(emulator, resource: str, key: str) -> list[dict]:
    return [r for r in emulator.records(resource) if (r.get("metadata") or {}).get(WRITE_KEY_FIELD) == key]


def use_connection(monkeypatch, emulator, **extra):
    conn = dict(emulator.connection)
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(conn))


# ---------------------------------------------------------------------- what a create sends and returns


def test_a_create_returns_the_object_with_its_write_key_in_metadata(hook, piriod_emulator):
    created = hook.create_object("customers", {"name": "Ada Ltd", "metadata": {"crm_id": "42"}}, write_key="k-1")
    assert created["id"].startswith("cus_")
    assert created["metadata"] == {"crm_id": "42", WRITE_KEY_FIELD: "k-1"}
    assert [r["id"] for r in with_key(piriod_emulator, "customers", "k-1")] == [created["id"]]


def test_the_callers_data_is_left_alone(hook):
    data = {"name": "Ada Ltd", "metadata": {"crm_id": "42"}}
    hook.create_object("customers", data, write_key="k-2")
    assert data == {"name": "Ada Ltd", "metadata": {"crm_id": "42"}}


def test_outside_a_task_each_create_gets_its_own_key(hook, piriod_emulator):
    first = hook.create_object("customers", {"name": "A"})
    second = hook.create_object("customers", {"name": "A"})
    keys = {first["metadata"][WRITE_KEY_FIELD], second["metadata"][WRITE_KEY_FIELD]}
    assert len(keys) == 2


def test_money_goes_on_the_wire_with_the_same_digits(hook, piriod_emulator):
    customer = piriod_emulator.records("customers")[0]["id"]
    lines = [
        {"description": "seats", "quantity": 3, "unit_price": Decimal("19.99")},
        {"description": "rounding", "quantity": 1, "unit_price": Decimal("0.01")},
    ]
    invoice = hook.create_object("invoices", {"customer": customer, "lines": lines}, write_key="inv-1")
    stored = piriod_emulator.record("invoices", invoice["id"])
    assert [Decimal(str(line["unit_price"])) for line in stored["lines"]] == [Decimal("19.99"), Decimal("0.01")]
    assert invoice["status"] == "draft"


# ---------------------------------------------------------------------- ambiguity: never twice, never lost


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("commit_then_drop", {}),  # the connection reset after Piriod stored it
        ("commit_then_status", {"status": 502}),  # a gateway lost Piriod's 201
        ("commit_then_status", {"status": 504}),
        ("commit_then_slow", {"seconds": 4.0}),  # the 201 arrives after the deadline
    ],
)
def test_a_create_whose_answer_was_lost_after_it_was_stored_exists_once(piriod_emulator, fast_retries, kind, spec):
    hook = PiriodHook(timeout=1.5)
    piriod_emulator.add_fault(kind, path="/customers/", method="POST", **spec)
    created = hook.create_object("customers", {"name": "Lost Answer"}, write_key=f"amb-{kind}")
    assert [r["id"] for r in with_key(piriod_emulator, "customers", f"amb-{kind}")] == [created["id"]]
    assert posts(piriod_emulator, "/customers/") == 1  # looked up, not resent


def test_a_create_that_failed_before_it_was_stored_is_sent_again_once_the_lookup_finds_nothing(hook, piriod_emulator):
    piriod_emulator.add_fault("status", path="/customers/", method="POST", status=502)  # answered, nothing stored
    created = hook.create_object("customers", {"name": "Retry Me"}, write_key="amb-none")
    assert [r["id"] for r in with_key(piriod_emulator, "customers", "amb-none")] == [created["id"]]
    assert posts(piriod_emulator, "/customers/") == 2


def test_a_create_that_stays_ambiguous_gives_up_with_a_typed_error(hook, piriod_emulator):
    piriod_emulator.add_fault("status", path="/customers/", method="POST", status=503, times=None)
    with pytest.raises(PiriodAmbiguousWriteError, match="may have acted"):
        hook.create_object("customers", {"name": "Never"}, write_key="amb-forever")
    assert with_key(piriod_emulator, "customers", "amb-forever") == []
    assert posts(piriod_emulator, "/customers/") == 4  # each resend only after a lookup found nothing


def test_a_retried_task_looks_its_key_up_before_sending(hook, piriod_emulator):
    first = hook.create_object("customers", {"name": "Crash"}, write_key="crash-1")
    again = PiriodHook().create_object("customers", {"name": "Crash"}, write_key="crash-1", look_first=True)
    assert again["id"] == first["id"]
    assert posts(piriod_emulator, "/customers/") == 1


def test_a_429_on_a_create_is_retried_because_nothing_was_done(hook, piriod_emulator):
    piriod_emulator.add_fault("status", path="/customers/", method="POST", status=429, retry_after="0")
    created = hook.create_object("customers", {"name": "Throttled"}, write_key="k-429")
    assert [r["id"] for r in with_key(piriod_emulator, "customers", "k-429")] == [created["id"]]


def test_two_objects_with_one_key_are_an_error_not_a_guess(hook, piriod_emulator):
    for _ in range(2):
        piriod_emulator.create("customers", name="Twin", metadata={WRITE_KEY_FIELD: "twin"})
    with pytest.raises(PiriodError, match="2 customers carry the same write key"):
        hook.create_object("customers", {"name": "Twin"}, write_key="twin", look_first=True)
    assert posts(piriod_emulator, "/customers/") == 0


# ---------------------------------------------------------------------- refusals


def test_a_field_piriod_refuses_is_named_and_not_retried(hook, piriod_emulator):
    with pytest.raises(PiriodValidationError, match="name") as info:
        hook.create_object("customers", {"email": "a@b.example"}, write_key="k-400")
    assert "name" in info.value.errors
    assert posts(piriod_emulator, "/customers/") == 1


def test_read_only_refuses_every_write_before_any_request(monkeypatch, piriod_emulator, fast_retries):
    use_connection(monkeypatch, piriod_emulator, read_only=True)
    hook = PiriodHook()
    before = api_requests(piriod_emulator)
    writes = [
        lambda: hook.create_object("customers", {"name": "x"}),
        lambda: hook.update_object("customers", "cus_1", {"name": "x"}),
        lambda: hook.run_action("invoices", "inv_1", "finalize"),
        lambda: hook.archive_object("customers", "cus_1"),
    ]
    for write in writes:
        with pytest.raises(PiriodInputError, match="read_only"):
            write()
    assert api_requests(piriod_emulator) == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.create_object("contacts", {"name": "x"}), "contacts does not accept create"),
        (lambda h: h.create_object("plans", {"name": "x"}), "plans does not accept create"),
        (lambda h: h.archive_object("invoices", "inv_1"), "invoices does not accept archive"),
        (lambda h: h.run_action("invoices", "inv_1", "explode"), "invoices has no action 'explode'"),
        (lambda h: h.run_action("customers", "cus_1", "finalize"), "customers has no action"),
        (lambda h: h.create_object("customers", ["name"]), "data must be a mapping"),
        (lambda h: h.create_object("customers", {"name": object()}), "cannot be sent as JSON"),
        (lambda h: h.create_object("customers", {"metadata": "x"}), "metadata"),
        (lambda h: h.create_object("customers", {"name": "x"}, write_key=""), "write_key"),
        (lambda h: h.update_object("customers", "", {"name": "x"}), "object_id"),
        (lambda h: h.create_object("nonsense", {}), "nonsense"),
    ],
)
def test_bad_writes_are_refused_before_any_request(hook, piriod_emulator, call, message):
    before = api_requests(piriod_emulator)
    with pytest.raises(PiriodInputError, match=message):
        call(hook)
    assert api_requests(piriod_emulator) == before


# ---------------------------------------------------------------------- updates, archives, actions


def test_an_update_patches_and_is_retried_on_a_502(hook, piriod_emulator):
    customer = piriod_emulator.records("customers")[0]["id"]
    piriod_emulator.add_fault("status", path=f"/customers/{customer}/", method="PATCH", status=502)
    updated = hook.update_object("customers", customer, {"email": "new@example.com"})
    assert updated["email"] == "new@example.com"
    assert piriod_emulator.record("customers", customer)["email"] == "new@example.com"


def test_an_archive_deletes(hook, piriod_emulator):
    customer = piriod_emulator.records("customers")[0]["id"]
    assert hook.archive_object("customers", customer) is None
    assert piriod_emulator.record("customers", customer)["status"] == "archived"


def draft_invoice(hook, piriod_emulator, key: str) -> str:
    customer = piriod_emulator.records("customers")[0]["id"]
    lines = [{"description": "x", "quantity": 1, "unit_price": "10.00"}]
    return hook.create_object("invoices", {"customer": customer, "lines": lines}, write_key=key)["id"]


def test_finalize_runs_once_and_a_finalized_invoice_is_left_alone(hook, piriod_emulator):
    invoice = draft_invoice(hook, piriod_emulator, "fin-1")
    assert hook.run_action("invoices", invoice, "finalize")["status"] == "finalized"
    assert hook.run_action("invoices", invoice, "finalize")["status"] == "finalized"
    assert posts(piriod_emulator, f"/invoices/{invoice}/finalize/") == 1


@pytest.mark.parametrize("kind", ["commit_then_drop", "commit_then_status"])
def test_an_action_whose_answer_was_lost_is_resolved_by_reading_the_status(hook, piriod_emulator, kind):
    invoice = draft_invoice(hook, piriod_emulator, f"fin-{kind}")
    piriod_emulator.add_fault(kind, path=f"/invoices/{invoice}/finalize/", method="POST")
    assert hook.run_action("invoices", invoice, "finalize")["status"] == "finalized"
    assert posts(piriod_emulator, f"/invoices/{invoice}/finalize/") == 1


def test_pause_and_resume_a_subscription(hook, piriod_emulator):
    active = next(s for s in piriod_emulator.records("subscriptions") if s["status"] == "active")["id"]
    assert hook.run_action("subscriptions", active, "pause")["status"] == "paused"
    assert hook.run_action("subscriptions", active, "resume")["status"] == "active"


def test_cancel_is_a_delete_and_reads_the_object_back(hook, piriod_emulator):
    active = next(s for s in piriod_emulator.records("subscriptions") if s["status"] == "active")["id"]
    assert hook.run_action("subscriptions", active, "cancel")["status"] == "cancelled"


# ---------------------------------------------------------------------- what the log and errors show


def test_writes_log_no_record_contents_above_debug_and_never_the_token(hook, piriod_emulator, caplog, capfd):
    caplog.set_level(logging.INFO)
    piriod_emulator.add_fault("commit_then_drop", path="/customers/", method="POST")
    hook.create_object("customers", {"name": "Private Person", "email": "private@example.com"}, write_key="log-1")
    out, err = capfd.readouterr()  # Airflow's structlog prints where the stdlib handlers do not see it
    text = caplog.text + out + err
    assert "looking the customer up" in text  # a person on call sees why a lookup happened
    assert "private@example.com" not in text and "Private Person" not in text
    assert piriod_emulator.token not in text
