"""PiriodCustomerOperator: modes, XCom values, NDJSON output, and nothing partial on failure."""

from __future__ import annotations

import json

import pytest

from airflow_provider_piriod.exceptions import PiriodInputError, PiriodNotFoundError, PiriodServerError
from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator, customers_asset


def op(**kwargs) -> PiriodCustomerOperator:
    return PiriodCustomerOperator(task_id="customers", **kwargs)


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({}, "none of them"),
        ({"customer_id": "cus_1", "customer_ids": ["cus_2"]}, "customer_id and customer_ids"),
        ({"customer_id": "cus_1", "filters": {}}, "customer_id and filters"),
        ({"customer_ids": [], "filters": {"a": 1}}, "customer_ids and filters"),
    ],
)
def test_exactly_one_mode_is_required(kwargs, named):
    with pytest.raises(ValueError, match=f"exactly one of customer_id, customer_ids or filters.*got {named}"):
        op(**kwargs)


def test_empty_filters_means_all_customers_and_is_a_valid_mode():
    assert op(filters={}).filters == {}


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"max_workers": 0}, "max_workers"), ({"page_size": 500}, "page_size")]
)
def test_bad_tuning_is_refused_at_construction(kwargs, message):
    with pytest.raises(PiriodInputError, match=message):
        op(filters={}, **kwargs)


def test_construction_does_no_io(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_PIRIOD_DEFAULT", raising=False)
    task = op(customer_id="cus_1", piriod_conn_id="does_not_exist")
    assert "hook" not in task.__dict__  # the hook is built lazily, on first use in execute


def test_templated_fields_and_renderers():
    assert set(PiriodCustomerOperator.template_fields) == {
        "customer_id",
        "customer_ids",
        "filters",
        "output_path",
        "piriod_conn_id",
    }
    assert PiriodCustomerOperator.template_fields_renderers == {"customer_ids": "json", "filters": "json"}


def test_declares_the_workspace_customers_asset_unless_told_otherwise():
    assert op(filters={}).outlets == [customers_asset("piriod_default")]
    assert op(filters={}, piriod_conn_id="billing").outlets[0].uri == "piriod://billing/customers"
    assert op(filters={}, outlets=[]).outlets == []


# ---------------------------------------------------------------------- execute


def test_single_customer_returns_its_json(piriod_emulator):
    record = piriod_emulator.customers()[0]
    assert op(customer_id=record["id"]).execute({}) == record


def test_single_missing_customer_fails_or_returns_none(piriod_emulator):
    with pytest.raises(PiriodNotFoundError):
        op(customer_id="cus_missing").execute({})
    assert op(customer_id="cus_missing", ignore_missing=True).execute({}) is None


def test_ids_return_a_list_in_input_order(piriod_emulator):
    records = piriod_emulator.customers()[:12]
    wanted = list(reversed(records))
    result = op(customer_ids=[r["id"] for r in wanted], max_workers=4).execute({})
    assert result == wanted


def test_ids_with_ignore_missing_leave_unknown_ones_out(piriod_emulator):
    records = piriod_emulator.customers()[:2]
    ids = [records[0]["id"], "cus_missing", records[1]["id"]]
    assert op(customer_ids=ids, ignore_missing=True).execute({}) == records
    with pytest.raises(PiriodNotFoundError):
        op(customer_ids=ids).execute({})


def test_filters_return_every_match(piriod_emulator):
    wanted = [r for r in piriod_emulator.customers() if r["country"]["id"] == "MX"]
    result = op(filters={"country": "MX"}, page_size=7).execute({})
    assert sorted(result, key=lambda r: r["id"]) == sorted(wanted, key=lambda r: r["id"])
    assert len(piriod_emulator.requests()) == -(-len(wanted) // 7)


def test_test_mode_argument_reaches_the_api(piriod_emulator):
    test_records = piriod_emulator.customers(test_mode=True)
    result = op(filters={}, test_mode=True).execute({})
    assert {r["id"] for r in result} == {r["id"] for r in test_records}


def test_a_rendered_string_instead_of_a_list_is_a_clear_error(piriod_emulator):
    with pytest.raises(PiriodInputError, match="customer_ids must be a list of ids, got str"):
        op(customer_ids="cus_1,cus_2").execute({})


# ---------------------------------------------------------------------- output_path


def read_ndjson(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.piriod_emulator(customers=450)
def test_filters_stream_to_ndjson_and_return_path_and_count(piriod_emulator, tmp_path):
    target = tmp_path / "out" / "customers.ndjson"
    result = op(filters={}, output_path=f"file://{target}").execute({})
    records = piriod_emulator.customers()
    assert result == {"path": f"file://{target}", "count": len(records)}
    assert sorted(read_ndjson(target), key=lambda r: r["id"]) == sorted(records, key=lambda r: r["id"])
    assert [p.name for p in target.parent.iterdir()] == ["customers.ndjson"]


def test_ids_and_single_modes_write_ndjson_too(piriod_emulator, tmp_path):
    records = piriod_emulator.customers()[:3]
    result = op(customer_ids=[r["id"] for r in records], output_path=f"file://{tmp_path}/ids.ndjson").execute({})
    assert result["count"] == 3 and read_ndjson(tmp_path / "ids.ndjson") == records
    op(customer_id=records[0]["id"], output_path=f"file://{tmp_path}/one.ndjson").execute({})
    assert read_ndjson(tmp_path / "one.ndjson") == [records[0]]


@pytest.mark.piriod_emulator(customers=300)
@pytest.mark.parametrize("max_workers", [1, 8])
def test_a_bad_page_mid_stream_leaves_no_file_and_no_leftovers(
    piriod_emulator, tmp_path, fast_retries, monkeypatch, max_workers
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(dict(piriod_emulator.connection, extra={"max_retries": 1}))
    )
    target = tmp_path / "customers.ndjson"
    piriod_emulator.add_fault("status", status=500, query="page=3", times=None)
    with pytest.raises(PiriodServerError):
        op(filters={}, page_size=50, max_workers=max_workers, output_path=f"file://{target}").execute({})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_the_previous_good_file(piriod_emulator, tmp_path):
    target = tmp_path / "customers.ndjson"
    target.write_text("previous good run\n")
    with pytest.raises(PiriodNotFoundError):
        op(customer_ids=["cus_missing"], output_path=f"file://{target}").execute({})
    assert target.read_text() == "previous good run\n"
    assert list(tmp_path.iterdir()) == [target]
