"""CustomerCondition: argument checks and the judgement every sensor path shares."""

from __future__ import annotations

import pytest

from airflow_provider_piriod.conditions import CustomerCondition, ResourceCondition
from airflow_provider_piriod.exceptions import PiriodInputError

CUSTOMER = {
    "id": "cus_1",
    "status": "pending",
    "country": {"id": "CL"},
    "contacts": [{"email": "a@b.cl"}],
    "metadata": {"tier": "gold"},
}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of customer_id or filters"),
        ({"customer_id": "cus_1", "filters": {}}, "exactly one of customer_id or filters"),
        (
            {"customer_id": "cus_1", "target_status": "actve"},
            "target_status must be one of active, archived, pending; got 'actve'",
        ),
        ({"customer_id": "cus_1", "match": ["country.id"]}, "match must be a dict"),
        ({"customer_id": "cus_1", "match": {"": 1}}, "match must be a dict"),
        ({"filters": {}, "min_count": 0}, "min_count must be a whole number of at least 1"),
        ({"customer_id": "cus_1", "fail_statuses": "archived"}, "fail_statuses must be a list"),
        ({"customer_id": "cus_1", "fail_statuses": ["deleted"]}, "fail_statuses must be a list"),
        (
            {"customer_id": "cus_1", "target_status": "active", "fail_statuses": ["active"]},
            "cannot also be in fail_statuses",
        ),
        ({"filters": [("a", 1)]}, "filters must be a dict"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(PiriodInputError, match=message):
        CustomerCondition.build(**kwargs)


def test_fail_statuses_default_to_archived_only_when_waiting_for_another_status():
    assert CustomerCondition.build(customer_id="c", target_status="active").fail_statuses == ("archived",)
    assert CustomerCondition.build(customer_id="c", target_status="archived").fail_statuses == ()
    assert CustomerCondition.build(customer_id="c").fail_statuses == ()
    assert CustomerCondition.build(customer_id="c", target_status="active", fail_statuses=[]).fail_statuses == ()


def test_customer_mode_judgements():
    waiting_for_active = CustomerCondition.build(customer_id="cus_1", target_status="active")
    assert waiting_for_active.judge_customer(None).state == "waiting"
    pending = waiting_for_active.judge_customer(CUSTOMER)
    assert pending.state == "waiting" and "its status is 'pending', waiting for 'active'" in pending.message
    done = waiting_for_active.judge_customer({**CUSTOMER, "status": "active"})
    assert done.state == "done" and done.value == {**CUSTOMER, "status": "active"}
    failed = waiting_for_active.judge_customer({**CUSTOMER, "status": "archived"})
    assert failed.state == "failed" and "reached status 'archived' while waiting for 'active'" in failed.message
    assert CustomerCondition.build(customer_id="cus_1").judge_customer(CUSTOMER).state == "done"  # exists is enough


def test_match_uses_dotted_paths():
    condition = CustomerCondition.build(
        customer_id="cus_1", match={"country.id": "CL", "contacts.0.email": "a@b.cl", "metadata.tier": "gold"}
    )
    assert condition.judge_customer(CUSTOMER).state == "done"
    other = condition.judge_customer({**CUSTOMER, "country": {"id": "MX"}})
    assert other.state == "waiting" and "country.id='MX' (want 'CL')" in other.message
    assert (
        CustomerCondition.build(customer_id="c", match={"contacts.5.email": None}).judge_customer(CUSTOMER).state
        == "waiting"
    )
    assert (
        CustomerCondition.build(customer_id="c", match={"nope.deeper": None}).judge_customer(CUSTOMER).state
        == "waiting"
    )


def test_filters_mode_counts_and_lists():
    by_count = CustomerCondition.build(filters={"country": "CL"}, min_count=2)
    assert not by_count.filters_client_side
    assert by_count.judge_count(1).state == "waiting" and by_count.judge_count(2) is None
    with_status = CustomerCondition.build(filters={"country": "CL"}, target_status="active", min_count=2)
    assert with_status.filters_client_side
    customers = [
        {**CUSTOMER, "id": "a", "status": "active"},
        {**CUSTOMER, "id": "b"},
        {**CUSTOMER, "id": "c", "status": "active"},
    ]
    assert [c["id"] for c in with_status.judge_list(customers).value] == ["a", "c"]
    assert with_status.judge_list(customers[:2]).state == "waiting"


# ---------------------------------------------------------------------- any resource

INVOICE = {"id": "inv_1", "status": "finalized", "currency": "USD", "lines": [{"name": "Plan"}]}


def test_resource_conditions_check_the_resources_own_statuses():
    condition = ResourceCondition.build(resource="invoices", object_id="inv_1", target_status="paid")
    assert condition.fail_statuses == ("uncollectible",) and condition.resource == "invoices"
    with pytest.raises(PiriodInputError, match="target_status must be one of draft, finalized, paid, uncollectible"):
        ResourceCondition.build(resource="invoices", object_id="inv_1", target_status="active")
    with pytest.raises(PiriodInputError, match="resource must be one of the Piriod resources"):
        ResourceCondition.build(resource="invoicez", object_id="inv_1")
    with pytest.raises(PiriodInputError, match="PiriodSensor needs exactly one of object_id or filters"):
        ResourceCondition.build(resource="invoices")


def test_resource_judgements_name_the_resource():
    condition = ResourceCondition.build(
        resource="invoices", object_id="inv_1", target_status="paid", match={"lines.0.name": "Plan"}
    )
    assert condition.judge_object(None).message == "Piriod invoice 'inv_1' does not exist yet"
    waiting = condition.judge_object(INVOICE)
    assert waiting.state == "waiting" and "its status is 'finalized', waiting for 'paid'" in waiting.message
    failed = condition.judge_object({**INVOICE, "status": "uncollectible"})
    assert failed.state == "failed"
    assert failed.message.startswith("Piriod invoice 'inv_1' reached status 'uncollectible' while waiting for 'paid'")
    assert condition.judge_object({**INVOICE, "status": "paid"}).value == {**INVOICE, "status": "paid"}
    listing = ResourceCondition.build(resource="creditnotes", filters={"invoice": "inv_1"}, min_count=2)
    assert listing.judge_count(1).message == "1 Piriod credit notes match {'invoice': 'inv_1'}; waiting for 2"


def test_customer_condition_is_the_resource_condition_on_customers():
    condition = CustomerCondition.build(customer_id="cus_1", target_status="active")
    assert isinstance(condition, ResourceCondition) and condition.resource == "customers"
    assert condition.customer_id == condition.object_id == "cus_1"
    assert condition == CustomerCondition(
        **{**vars(ResourceCondition.build(resource="customers", object_id="cus_1", target_status="active"))}
    )
