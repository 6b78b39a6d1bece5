"""triggering_ids: one line for a task to get the ids behind its run, however Airflow folded the events."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_provider_piriod.events import event_payload, triggering_ids


def event(payload) -> SimpleNamespace:
    """An asset event as a task sees it: Airflow puts the trigger's payload under ``extra``."""
    return SimpleNamespace(extra={"from_trigger": True, "payload": payload})


def test_the_payload_is_small_json_with_resource_ids_and_count():
    """Exactly the documented keys, nothing else (no connection, no token, no timestamps)."""
    assert event_payload("customers", ["cus_1", "cus_2"]) == {
        "resource": "customers",
        "ids": ["cus_1", "cus_2"],
        "count": 2,
    }


def test_several_folded_events_give_every_id_once_in_order():
    """Runs coalesce events (e.g. max_active_runs=1): the ids of all of them, oldest first, no repeats."""
    events = {
        "asset": [
            event(event_payload("customers", ["cus_1", "cus_2"])),
            event(event_payload("customers", ["cus_2", "cus_3"])),
        ]
    }
    assert triggering_ids(events) == ["cus_1", "cus_2", "cus_3"]


def test_other_events_on_the_asset_and_other_resources_are_left_out():
    """A task outlet's event, another trigger's payload, or another resource when one is asked for."""
    events = {
        "a": [SimpleNamespace(extra={}), event({"something": "else"}), event(event_payload("payments", [5]))],
        "b": [event(event_payload("customers", ["cus_9"])), SimpleNamespace(extra=None)],
    }
    assert triggering_ids(events) == [5, "cus_9"]
    assert triggering_ids(events, resource="customers") == ["cus_9"]
    assert triggering_ids(None) == [] and triggering_ids({}) == []


def test_a_flat_list_of_rest_api_events_works_too():
    """The REST API's asset events (dicts with ``extra``) fold the same way."""
    events = [{"extra": {"payload": event_payload("invoices", ["inv_1"])}}, {"extra": {}}]
    assert triggering_ids(events) == ["inv_1"]


def test_the_same_id_in_two_resources_is_two_objects():
    """Invoice 5 and payment 5 both come back when no resource is asked for."""
    events = {"a": [event(event_payload("invoices", [5])), event(event_payload("payments", [5, 6]))]}
    assert triggering_ids(events) == [5, 5, 6]
    assert triggering_ids(events, resource="payments") == [5, 6]


def test_webhook_and_trigger_events_fold_together_each_object_once():
    """A payment announced by a webhook and again by the polling backstop is read once."""
    from airflow_provider_piriod.events import webhook_extra

    events = {
        "payments": [
            SimpleNamespace(extra=webhook_extra("payment.created", "pay_1", "payments")),
            event(event_payload("payments", ["pay_1", "pay_2"])),
            SimpleNamespace(extra=webhook_extra("payment.created", "pay_3", "payments")),
            SimpleNamespace(extra=webhook_extra("customer.created", "cus_1", "customers")),
        ]
    }
    assert triggering_ids(events, "payments") == ["pay_1", "pay_2", "pay_3"]
    assert triggering_ids(events) == ["pay_1", "pay_2", "pay_3", "cus_1"]
    assert triggering_ids([{"extra": webhook_extra("payment.created", "pay_9", "payments")}]) == ["pay_9"]
