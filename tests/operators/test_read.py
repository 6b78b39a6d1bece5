"""PiriodReadOperator: any resource, the customer operator's modes, XCom values, NDJSON and the default Asset."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.exceptions import PiriodInputError, PiriodNotFoundError, PiriodServerError
from airflow_provider_piriod.operators.piriod import (
    PiriodCustomerOperator,
    PiriodReadOperator,
    customers_asset,
    piriod_asset,
)
from airflow_provider_piriod.testing.billing_data import BIG_TOTAL_INVOICE_ID

BIG_TOTAL = Decimal("123456789012345.67")


def read(**kwargs) -> PiriodReadOperator:
    return PiriodReadOperator(task_id="read", **kwargs)


def as_api_json(record):
    """An emulator record (every amount a Decimal) as the hooks decode Piriod's JSON (long amounts only)."""
    return jsoncodec.loads(jsoncodec.dumps(record))


def by_id(items):
    return sorted(items, key=lambda item: str(item["id"]))


# ---------------------------------------------------------------------- construction


def test_an_unknown_resource_is_refused_when_the_dag_is_parsed():
    with pytest.raises(PiriodInputError, match=r"resource must be one of the Piriod resources .*invoices.*'invoice'"):
        read(resource="invoice", filters={})
    with pytest.raises(ValueError):  # PiriodInputError is a ValueError, as parse-time errors are
        read(resource=None, object_id="inv_1")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({}, "none of them"),
        ({"object_id": "inv_1", "object_ids": ["inv_2"]}, "object_id and object_ids"),
        ({"object_id": "inv_1", "filters": {}}, "object_id and filters"),
        ({"object_ids": [], "filters": {"status": "paid"}}, "object_ids and filters"),
    ],
)
def test_exactly_one_mode_is_required(kwargs, named):
    pattern = re.escape(
        "PiriodReadOperator needs exactly one of object_id, object_ids or filters "
        f"(filters={{}} means all invoices); got {named}"
    )
    with pytest.raises(ValueError, match=pattern):
        read(resource="invoices", **kwargs)


def test_the_customer_operator_keeps_its_own_names_in_the_same_message():
    with pytest.raises(
        ValueError,
        match=r"PiriodCustomerOperator needs exactly one of customer_id, customer_ids or "
        r"filters .filters=.. means all customers.; got customer_id and filters",
    ):
        PiriodCustomerOperator(task_id="c", customer_id="cus_1", filters={})


def test_templated_fields_and_renderers():
    assert PiriodReadOperator.template_fields == ("object_id", "object_ids", "filters", "output_path", "piriod_conn_id")
    assert PiriodReadOperator.template_fields_renderers == {"object_ids": "json", "filters": "json"}


def test_construction_does_no_io(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_PIRIOD_DEFAULT", raising=False)
    task = read(resource="payments", object_id="pay_1", piriod_conn_id="does_not_exist")
    assert "hook" not in task.__dict__ and task.resource == "payments"


def test_declares_the_resources_asset_unless_told_otherwise():
    assert read(resource="invoices", filters={}).outlets == [piriod_asset("piriod_default", "invoices")]
    assert read(resource="payments", filters={}, piriod_conn_id="billing").outlets[0].uri == "piriod://billing/payments"
    assert read(resource="invoices", filters={}, outlets=[]).outlets == []
    assert customers_asset("billing") == piriod_asset("billing", "customers")
    with pytest.raises(PiriodInputError, match="resource must be one of"):
        piriod_asset("billing", "invoice")


def test_templating_the_customer_names_renders_the_generic_fields():
    task = PiriodCustomerOperator(task_id="c", customer_ids=["{{ params.first }}", "cus_2"])
    task.render_template_fields({"params": {"first": "cus_1"}})
    assert task.customer_ids == task.object_ids == ["cus_1", "cus_2"]
    single = PiriodCustomerOperator(task_id="one", customer_id="{{ params.first }}")
    single.render_template_fields({"params": {"first": "cus_9"}})
    assert single.customer_id == single.object_id == "cus_9" and single.resource == "customers"


# ---------------------------------------------------------------------- execute


def test_one_invoice_returns_its_json_with_every_digit(piriod_emulator):
    record = piriod_emulator.record("invoices", BIG_TOTAL_INVOICE_ID)
    result = read(resource="invoices", object_id=BIG_TOTAL_INVOICE_ID).execute({})
    assert result == as_api_json(record)
    assert type(result["total"]) is Decimal and result["total"] == BIG_TOTAL


def test_a_missing_object_fails_or_returns_none(piriod_emulator):
    with pytest.raises(PiriodNotFoundError):
        read(resource="invoices", object_id="inv_missing").execute({})
    assert read(resource="invoices", object_id="inv_missing", ignore_missing=True).execute({}) is None


def test_ids_return_a_list_in_input_order_and_integer_ids_work(piriod_emulator):
    payments = piriod_emulator.records("payments")[:6]
    wanted = list(reversed(payments))
    assert read(resource="payments", object_ids=[p["id"] for p in wanted], max_workers=3).execute({}) == [
        as_api_json(p) for p in wanted
    ]
    note = piriod_emulator.records("creditnotes")[0]
    assert isinstance(note["id"], int)
    assert read(resource="creditnotes", object_ids=[note["id"]]).execute({}) == [as_api_json(note)]


def test_ids_with_ignore_missing_leave_unknown_ones_out(piriod_emulator):
    payments = piriod_emulator.records("payments")[:2]
    ids = [payments[0]["id"], "pay_missing", payments[1]["id"]]
    assert read(resource="payments", object_ids=ids, ignore_missing=True).execute({}) == [
        as_api_json(p) for p in payments
    ]
    with pytest.raises(PiriodNotFoundError):
        read(resource="payments", object_ids=ids).execute({})


def test_a_rendered_string_instead_of_a_list_is_a_clear_error(piriod_emulator):
    with pytest.raises(PiriodInputError, match="object_ids must be a list of ids, got str"):
        read(resource="invoices", object_ids="inv_1,inv_2").execute({})
    with pytest.raises(PiriodInputError, match="object_id is empty or blank"):
        read(resource="invoices", object_id=" ").execute({})


def test_filters_return_every_match_and_parallel_pages_keep_piriods_order(piriod_emulator):
    paid = [r for r in piriod_emulator.records("invoices") if r["status"] == "paid"]
    one_by_one = read(resource="invoices", filters={"status": "paid"}, page_size=9).execute({})
    assert len(piriod_emulator.requests()) == -(-len(paid) // 9)
    assert by_id(one_by_one) == by_id(as_api_json(r) for r in paid)
    assert read(resource="invoices", filters={"status": "paid"}, page_size=9, max_workers=4).execute({}) == one_by_one


def test_test_mode_argument_reaches_the_api(piriod_emulator):
    test_invoices = piriod_emulator.records("invoices", test_mode=True)
    result = read(resource="invoices", filters={}, test_mode=True).execute({})
    assert {r["id"] for r in result} == {r["id"] for r in test_invoices}


def test_an_amount_xcom_cannot_carry_is_pushed_as_its_exact_digits(piriod_emulator, caplog):
    invoice = piriod_emulator.create("invoices", total=Decimal("98765432109876.54"), status="finalized")
    with caplog.at_level(logging.WARNING):
        result = read(resource="invoices", filters={"id": invoice["id"]}).execute({})
    assert result[0]["total"] == "98765432109876.54"
    assert "invoices.0.total = 98765432109876.54 has more digits than Airflow's XCom carries" in caplog.text


# ---------------------------------------------------------------------- output_path


def read_ndjson(path: Path) -> list:
    return [jsoncodec.loads(line) for line in path.read_bytes().splitlines()]


def test_filters_stream_exact_ndjson_and_return_path_and_count(piriod_emulator, tmp_path):
    target = tmp_path / "out" / "invoices.ndjson"
    records = piriod_emulator.records("invoices")
    result = read(resource="invoices", filters={}, max_workers=4, output_path=f"file://{target}").execute({})
    assert result == {"path": f"file://{target}", "count": len(records)}
    assert by_id(read_ndjson(target)) == by_id(as_api_json(r) for r in records)
    assert b'"total":123456789012345.67,' in target.read_bytes()  # the digits, as a bare number
    assert [p.name for p in target.parent.iterdir()] == ["invoices.ndjson"]


def test_ids_and_single_modes_write_ndjson_too(piriod_emulator, tmp_path):
    payments = piriod_emulator.records("payments")[:3]
    result = read(
        resource="payments", object_ids=[p["id"] for p in payments], output_path=f"file://{tmp_path}/ids.ndjson"
    ).execute({})
    assert result["count"] == 3 and read_ndjson(tmp_path / "ids.ndjson") == [as_api_json(p) for p in payments]
    read(resource="invoices", object_id=BIG_TOTAL_INVOICE_ID, output_path=f"file://{tmp_path}/one.ndjson").execute({})
    assert read_ndjson(tmp_path / "one.ndjson")[0]["total"] == BIG_TOTAL


def test_a_bad_page_mid_stream_leaves_no_file(piriod_emulator, tmp_path, fast_retries, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", jsoncodec.dumps(dict(piriod_emulator.connection, extra={"max_retries": 1}))
    )
    piriod_emulator.add_fault("status", status=500, query="page=3", times=None)
    with pytest.raises(PiriodServerError):
        read(
            resource="invoices",
            filters={},
            page_size=20,
            max_workers=4,
            output_path=f"file://{tmp_path}/invoices.ndjson",
        ).execute({})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- the README's examples


def readme_block(name: str) -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    match = re.search(rf"<!-- readme-test: {name} -->\n```python\n(.*?)```", readme, re.S)
    assert match, f"README block {name!r} not found"
    return match.group(1)


def test_readme_read_any_examples_build_tasks_whose_filters_render_to_the_interval():
    import pendulum

    from airflow_provider_piriod.compat import DAG

    try:
        from airflow.sdk.execution_time import macros
    except ImportError:  # Airflow 2.11
        from airflow import macros

    namespace: dict = {}
    with DAG(dag_id="readme_read_any", schedule=None):
        exec(compile(readme_block("read-any"), "README.md:read-any", "exec"), namespace)
    assert namespace["invoice"].resource == "invoices" and namespace["payments"].ignore_missing is True
    assert namespace["subscriptions"].max_workers == 4
    days = namespace["days_invoices"]
    days.render_template_fields(
        {
            "data_interval_start": pendulum.datetime(2026, 5, 12, tz="UTC"),
            "data_interval_end": pendulum.datetime(2026, 5, 13, tz="UTC"),
            "macros": macros,
        }
    )
    assert days.filters == {"date__gte": "2026-05-12", "date__lte": "2026-05-12"}
