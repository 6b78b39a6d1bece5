"""Lineage in process: hook reads reach the hook-lineage collector, the operator's OpenLineage datasets and facets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_provider_piriod.compat import Asset
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.lineage import file_dataset, openlineage_dataset, schema_facet
from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator, PiriodReadOperator
from airflow_provider_piriod.resources import get_resource

openlineage = pytest.importorskip("airflow.providers.openlineage", reason="the openlineage provider (dev extra)")


@pytest.fixture
def collector(monkeypatch):
    """A real hook-lineage collector in place of the process-wide one (a no-op while OpenLineage is off)."""
    from airflow.providers.common.compat import sdk

    fresh = sdk.HookLineageCollector()
    monkeypatch.setattr(sdk, "get_hook_lineage_collector", lambda: fresh, raising=False)
    return fresh


def inputs_of(collector) -> dict[str, tuple[int, object]]:
    """What the collector holds as inputs: URI -> (how often reported, the context that reported it)."""
    return {info.asset.uri: (info.count, info.context) for info in collector.collected_assets.inputs}


def read_uri(emulator, resource: str) -> str:
    return f"piriod://{emulator.url.split('://', 1)[1]}/{emulator.workspace}/{resource}"


def as_json(dataset) -> str:
    from openlineage.client.serde import Serde

    return Serde.to_json(dataset)


# ---------------------------------------------------------------------- hook-level lineage


@pytest.mark.piriod_emulator(customers=25)
def test_each_hook_call_reports_its_input_once_whatever_the_pages(hook, piriod_emulator, collector):
    """Two gets and one paged listing on customers count 3 reads; invoices by id 1; the hook is the context."""
    ids = [record["id"] for record in piriod_emulator.customers()[:2]]
    for customer_id in ids:
        hook.get_customer(customer_id)
    assert len(hook.list_customers(page_size=10)) == len(piriod_emulator.customers())
    invoices = [record["id"] for record in piriod_emulator.records("invoices")[:3]]
    hook.get_objects("invoices", invoices)
    pages = [
        entry for entry in piriod_emulator.requests() if entry["path"] == "/customers/" and entry["method"] == "GET"
    ]
    assert len(pages) >= 3
    counts = {uri: count for uri, (count, _) in inputs_of(collector).items()}
    assert counts == {read_uri(piriod_emulator, "customers"): 3, read_uri(piriod_emulator, "invoices"): 1}
    assert collector.collected_assets.outputs == []


@pytest.mark.piriod_emulator(customers=5)
def test_repeated_reads_of_one_dataset_are_one_entry_whatever_the_hooks(piriod_emulator, collector):
    """120 reads through 120 hooks are one entry counted 120 times, so a later dataset still fits under the cap."""
    customer_id = piriod_emulator.customers()[0]["id"]
    for _ in range(120):
        PiriodHook().get_customer(customer_id)
    PiriodHook().list_objects("invoices", page_size=5)
    counts = {uri: count for uri, (count, _) in inputs_of(collector).items()}
    assert counts == {read_uri(piriod_emulator, "customers"): 120, read_uri(piriod_emulator, "invoices"): 1}
    assert {context.conn_id for _, context in inputs_of(collector).values()} == {"piriod_default"}


def test_a_lineage_failure_never_fails_a_read(hook, piriod_emulator, monkeypatch, caplog):
    """A collector that cannot be had leaves the read's result intact; the warning leaves out the error's text."""
    from airflow.providers.common.compat import sdk

    record = piriod_emulator.customers()[0]

    def broken():
        raise RuntimeError(f"collector down {piriod_emulator.token}")

    monkeypatch.setattr(sdk, "get_hook_lineage_collector", broken, raising=False)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_piriod.lineage"):
        assert hook.get_customer(record["id"]).id == record["id"]
        assert len(list(hook.iter_customer_json())) == len(piriod_emulator.customers())
    assert "not reported to hook lineage: RuntimeError" in caplog.text
    assert piriod_emulator.token not in caplog.text


def test_a_piriod_asset_reaches_openlineage_through_the_registered_converter():
    """Airflow's asset translation finds the provider's converter: namespace is the host, name workspace/resource."""
    from airflow.providers.common.compat.openlineage.utils.utils import translate_airflow_asset

    uri = "piriod://API.piriod.com/acc_1/payments"
    dataset = translate_airflow_asset(Asset(uri), PiriodHook())
    assert (dataset.namespace, dataset.name) == ("piriod://api.piriod.com", "acc_1/payments")
    assert dataset == openlineage_dataset(uri)
    assert translate_airflow_asset(Asset("piriod://piriod_default/customers"), None) is None  # no workspace


def test_start_and_fail_name_no_piriod_output_from_the_default_outlet():
    """OpenLineage falls back to the task's outlets when START/FAIL are empty: the conn-id outlet adds nothing."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    operator = PiriodReadOperator(task_id="read", resource="invoices", filters={})
    for lineage in (operator.get_openlineage_facets_on_start(), operator.get_openlineage_facets_on_failure(None)):
        assert lineage.inputs == [] and lineage.outputs == []
        ExtractorManager().extract_inlets_and_outlets(lineage, operator)
        assert lineage.inputs == [] and lineage.outputs == []


# ---------------------------------------------------------------------- the operator's OpenLineage methods


def test_the_operator_reports_the_piriod_input_and_the_file_it_wrote(piriod_emulator, tmp_path):
    """START: the file only; COMPLETE: the resource (with schema) and the file; FAIL: no file; no extra request."""
    target = tmp_path / "out" / "customers.ndjson"
    operator = PiriodCustomerOperator(task_id="pull", filters={}, output_path=f"file://{target}")
    start = operator.get_openlineage_facets_on_start()
    assert start.inputs == []
    assert [(d.namespace, d.name) for d in start.outputs] == [("file", str(target))]

    operator.execute({})
    requests_made = len(piriod_emulator.requests())
    complete = operator.get_openlineage_facets_on_complete(None)
    failure = operator.get_openlineage_facets_on_failure(None)
    assert len(piriod_emulator.requests()) == requests_made

    (source,) = complete.inputs
    assert source.namespace == f"piriod://{piriod_emulator.url.split('://', 1)[1]}"
    assert source.name == f"{piriod_emulator.workspace}/customers"
    assert {"id", "email", "status", "created"} <= {field.name for field in source.facets["schema"].fields}
    assert [(d.namespace, d.name) for d in complete.outputs] == [("file", str(target))]
    assert failure.inputs == complete.inputs and failure.outputs == []
    assert piriod_emulator.token not in as_json(complete)


def test_an_xcom_read_has_no_output_and_an_untyped_resource_no_schema(piriod_emulator):
    """Without output_path there is no output; a resource read without a typed model gets no schema facet."""
    operator = PiriodReadOperator(task_id="receipts", resource="payment-receipts", filters={})
    operator.execute({})
    complete = operator.get_openlineage_facets_on_complete(None)
    (source,) = complete.inputs
    assert source.name == f"{piriod_emulator.workspace}/payment-receipts"
    assert source.facets == {}
    assert complete.outputs == []


def test_before_any_read_the_operator_names_no_input_and_looks_nothing_up(monkeypatch):
    """No connection exists, yet the lineage methods answer: nothing is resolved for lineage's sake."""
    monkeypatch.delenv("AIRFLOW_CONN_PIRIOD_DEFAULT", raising=False)
    operator = PiriodReadOperator(task_id="read", resource="invoices", object_id="inv_1")
    assert operator.get_openlineage_facets_on_complete(None).inputs == []
    assert "hook" not in operator.__dict__


# ---------------------------------------------------------------------- datasets and facets


def test_the_schema_facet_follows_the_model_fields():
    """Types come from the model annotations, nested models one level deep; untyped resources get none."""
    payment = {field.name: field for field in schema_facet(get_resource("payments")).fields}
    assert payment["amount"].type == "decimal"
    assert payment["id"].type == "integer|string"
    assert payment["date"].type == "date" and payment["created"].type == "timestamp"
    assert payment["customer"].type == "string|integer|object"
    customer = {field.name: field for field in schema_facet(get_resource("customers")).fields}
    assert customer["country"].type == "struct|string"
    assert {field.name for field in customer["country"].fields} == {
        "id",
        "name",
        "code",
        "has_regulation",
        "currencies",
    }
    assert customer["contacts"].type == "array" and customer["contacts"].fields[0].name == "id"
    assert all(not field.fields for field in customer["country"].fields)
    assert schema_facet(get_resource("coupons")) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("file:///data/customers/2025-03-02.ndjson", ("file", "/data/customers/2025-03-02.ndjson")),
        ("s3://lake/piriod/customers.ndjson", ("s3://lake", "piriod/customers.ndjson")),
    ],
)
def test_the_output_file_is_named_as_openlineage_names_files(path, expected):
    """A local file is namespace ``file`` and its absolute path; object storage is ``scheme://bucket`` and key."""
    dataset = file_dataset(path)
    assert (dataset.namespace, dataset.name) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/out/customers#2025.ndjson", ("file", "/data/out/customers#2025.ndjson")),
        ("/data/out/run?id=7.ndjson", ("file", "/data/out/run?id=7.ndjson")),
        ("/data//out/./x.ndjson", ("file", "/data/out/x.ndjson")),
        ("file://localhost/data/x.ndjson", ("file", "/data/x.ndjson")),
        ("file:/data/x.ndjson", ("file", "/data/x.ndjson")),
        ("s3://aws_default@lake/piriod/customers.ndjson", ("s3://lake", "piriod/customers.ndjson")),
        ("sftp://etl:hunter2@files.example.com/out/c.ndjson", ("sftp://files.example.com", "out/c.ndjson")),
        ("sftp://etl:hunter2@Files.example.com:2222/out/c.ndjson", ("sftp://files.example.com:2222", "out/c.ndjson")),
    ],
)
def test_the_output_name_keeps_the_whole_path_and_no_credentials(path, expected):
    """'#' and '?' belong to a local file name; user info and conn ids never reach the namespace."""
    dataset = file_dataset(path)
    assert (dataset.namespace, dataset.name) == expected
    assert "hunter2" not in as_json(dataset) and "aws_default" not in as_json(dataset)


def test_a_relative_output_path_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    """A scheme-less relative path is a local file under the working directory, named absolutely."""
    monkeypatch.chdir(tmp_path)
    assert (file_dataset("rel/x.ndjson").namespace, file_dataset("rel/x.ndjson").name) == (
        "file",
        str(tmp_path / "rel" / "x.ndjson"),
    )
    assert file_dataset("./d.ndjson").name == str(tmp_path / "d.ndjson")


def test_an_object_storage_path_output_is_named_like_its_string(tmp_path):
    """output_path may be an ObjectStoragePath: START names it without error, as its string would be named."""
    from airflow_provider_piriod.compat import ObjectStoragePath

    target = ObjectStoragePath(f"file://{tmp_path}/customers.ndjson")
    operator = PiriodCustomerOperator(task_id="pull", filters={}, output_path=target)
    (output,) = operator.get_openlineage_facets_on_start().outputs
    assert (output.namespace, output.name) == ("file", str(tmp_path / "customers.ndjson"))


@pytest.mark.parametrize(
    "spelling", ["file://localhost{dir}/a.ndjson", "{dir}//b.ndjson", "./c.ndjson", "{dir}/d#1.ndjson"]
)
def test_start_and_complete_name_the_file_written_alike(spelling, piriod_emulator, tmp_path, monkeypatch):
    """However output_path is spelled, START and COMPLETE give one name, and a file exists at that name."""
    monkeypatch.chdir(tmp_path)
    customer_id = piriod_emulator.customers()[0]["id"]
    operator = PiriodCustomerOperator(
        task_id="pull", customer_id=customer_id, output_path=spelling.format(dir=tmp_path)
    )
    start = [(d.namespace, d.name) for d in operator.get_openlineage_facets_on_start().outputs]
    operator.execute({})
    complete = [(d.namespace, d.name) for d in operator.get_openlineage_facets_on_complete(None).outputs]
    assert start == complete
    ((namespace, name),) = complete
    assert namespace == "file" and name.startswith(str(tmp_path))
    assert len(Path(name).read_text().splitlines()) == 1


# ---------------------------------------------------------------------- writes are outputs


def test_a_write_reports_its_resource_as_an_output_not_an_input(hook, piriod_emulator, collector):
    hook.create_object("customers", {"name": "Lineage Ltd"}, write_key="lineage-1")
    outputs = {info.asset.uri for info in collector.collected_assets.outputs}
    assert outputs == {read_uri(piriod_emulator, "customers")}
    assert collector.collected_assets.inputs == []


def test_a_write_operator_names_the_resource_as_its_openlineage_output(piriod_emulator):
    from airflow_provider_piriod.operators.piriod import PiriodCreateOperator

    operator = PiriodCreateOperator(task_id="create", resource="customers", data={"name": "Lineage Ltd"})
    operator.execute({})
    complete = operator.get_openlineage_facets_on_complete(None)
    assert complete.inputs == []
    assert [(d.namespace, d.name) for d in complete.outputs] == [
        (f"piriod://{piriod_emulator.url.split('://', 1)[1]}", f"{piriod_emulator.workspace}/customers")
    ]
