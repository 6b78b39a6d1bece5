"""The resource registry: every resource described once, and unknown names refused before any request."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_piriod import models
from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook
from airflow_provider_piriod.resources import RESOURCES, get_resource

NODE_SDK_RESOURCES = {
    "addons",
    "banks",
    "billers/built_in",
    "bulks/invoices",
    "bulks/retentions",
    "contacts",
    "coupons",
    "creditnotes",
    "customers",
    "debitnotes",
    "invoices",
    "ops",
    "orders",
    "orgunits",
    "payments",
    "plans",
    "products",
    "reminders/pendings",
    "reminders/messages",
    "reminders/templates",
    "reminders/rules",
    "retentions",
    "sources",
    "subscriptions",
    "usages",
}
TYPED = {
    "customers": "Customer",
    "contacts": "Contact",
    "invoices": "Invoice",
    "payments": "Payment",
    "subscriptions": "Subscription",
    "creditnotes": "CreditNote",
    "plans": "Plan",
    "products": "Product",
}
DEFAULT_FAIL_STATUSES = {
    "customers": ("archived",),
    "invoices": ("uncollectible",),
    "payments": ("failed", "cancelled", "canceled"),
    "subscriptions": ("cancelled", "finalized"),
    "creditnotes": ("cancelled",),
    "plans": ("archived",),
    "products": ("archived",),
}


def test_every_node_sdk_resource_and_payment_receipts_are_registered():
    assert set(RESOURCES) == NODE_SDK_RESOURCES | {"payment-receipts"}


def test_typed_resources_have_their_models_and_the_rest_the_lenient_one():
    for name, resource in RESOURCES.items():
        assert resource.model is getattr(models, TYPED.get(name, "PiriodObject"))
        assert resource.path == f"/{name}/"


def test_default_fail_statuses_are_known_statuses():
    for name, resource in RESOURCES.items():
        assert resource.fail_statuses == DEFAULT_FAIL_STATUSES.get(name, ())
        assert set(resource.fail_statuses) <= set(resource.statuses)


def test_id_prefixes_where_piriod_documents_them():
    prefixes = {name: RESOURCES[name].id_prefix for name in TYPED}
    assert prefixes == {
        "customers": "cus_",
        "contacts": "con_",
        "invoices": "inv_",
        "payments": "pay_",
        "subscriptions": "sub_",
        "creditnotes": None,
        "plans": "pla_",
        "products": "pro_",
    }


BAD_NAMES = [
    "",
    "Invoices",
    "invoice",
    "invoices/",
    "/invoices",
    "../customers",
    "customers/../invoices",
    "invoices?x=1",
    "invoices#",
    " invoices",
    "prices",
    None,
    3,
    ["invoices"],
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unknown_names_are_refused_naming_the_known_ones(name):
    with pytest.raises(PiriodInputError, match=r"resource must be one of .*customers.*invoices") as excinfo:
        get_resource(name)
    assert isinstance(excinfo.value, ValueError)


def test_hook_methods_refuse_unknown_resources_before_any_request(hook, piriod_emulator):
    calls = [
        lambda: hook.get_object("invoice", "inv_1"),
        lambda: hook.get_objects("../customers", ["a"]),
        lambda: list(hook.iter_objects("Invoices")),
        lambda: list(hook.iter_object_json("invoices?x=1")),
        lambda: hook.list_objects(""),
        lambda: hook.count_objects("prices"),
    ]
    for call in calls:
        with pytest.raises(PiriodInputError, match="resource must be one of"):
            call()
    assert piriod_emulator.requests() == []


def test_async_hook_refuses_unknown_resources_before_any_request(piriod_emulator):
    async def scenario():
        async with PiriodAsyncHook() as hook:
            with pytest.raises(PiriodInputError, match="resource must be one of"):
                await hook.get_object_json("invoices/x", "1")
            with pytest.raises(PiriodInputError, match="resource must be one of"):
                await hook.count_objects("nope")
            with pytest.raises(PiriodInputError, match="resource must be one of"):
                [item async for item in hook.iter_object_json("..")]

    asyncio.run(scenario())
    assert piriod_emulator.requests() == []


def test_integer_ids_only_where_the_docs_show_them(hook, piriod_emulator):
    with pytest.raises(PiriodInputError, match="object_id must be a string, got int"):
        hook.get_object("invoices", 12)
    with pytest.raises(PiriodInputError, match=r"object_ids\[1\] must be a string or a whole number, got bool"):
        hook.get_objects("creditnotes", [1, True])
    assert piriod_emulator.requests() == []
    assert get_resource("creditnotes").integer_ids and get_resource("payments").integer_ids


def test_a_registered_name_is_the_one_place_a_resource_is_described():
    resource = get_resource("payment-receipts")
    assert resource.path == "/payment-receipts/" and resource.label == "payment receipt"
    assert resource.object_path("a/b") == "/payment-receipts/a%2Fb/"


def test_the_registry_lists_only_writes_it_can_make_safely():
    from airflow_provider_piriod.resources import RESOURCES, WRITE_METHODS

    for resource in RESOURCES.values():
        assert set(resource.writes) <= set(WRITE_METHODS), resource.name
        if "create" in resource.writes:  # exactly-once needs somewhere to keep the write key
            assert "metadata" in resource.model.model_fields, resource.name
        for action in resource.actions:
            assert action.done and set(action.done) <= set(resource.statuses), (resource.name, action.name)
