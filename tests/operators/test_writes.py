"""The write operators against the emulator: upsert plans, partial refusals, re-runs, actions and creates."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.exceptions import PiriodAuthError, PiriodInputError
from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD
from airflow_provider_piriod.operators import batch
from airflow_provider_piriod.operators.piriod import (
    PiriodActionOperator,
    PiriodCreateOperator,
    PiriodUpsertOperator,
    piriod_asset,
)


def writes(emulator, method: str | None = None) -> list[dict]:
    kinds = {method} if method else {"POST", "PATCH", "PUT", "DELETE"}
    return [entry for entry in emulator.requests() if entry["method"] in kinds]


def upsert(**kwargs) -> PiriodUpsertOperator:
    kwargs.setdefault("resource", "customers")
    kwargs.setdefault("match_on", "tax_id")
    return PiriodUpsertOperator(task_id="upsert", **kwargs)


def by_tax_id(emulator, tax_id: str) -> list[dict]:
    return [c for c in emulator.records("customers") if c.get("tax_id") == tax_id]


@pytest.fixture
def two_known(piriod_emulator):
    """Two customers Piriod knows (one to change, one to leave alone) and the records that sync them."""
    known = [
        piriod_emulator.create("customers", name=f"Known {n}", tax_id=f"T-{n}", email=f"k{n}@x.example") for n in (1, 2)
    ]
    records = [
        {"name": "Known 1", "tax_id": "T-1", "email": "k1@x.example"},  # unchanged
        {"name": "New 3", "tax_id": "T-3", "email": "n3@x.example"},  # created
        {"name": "Known 2", "tax_id": "T-2", "email": "changed@x.example"},  # updated: email only
    ]
    return known, records


# ---------------------------------------------------------------------- refused when the DAG is parsed


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: upsert(resource="contacts", records=[]), "contacts does not accept create"),
        (lambda: upsert(resource="plans", records=[]), "plans does not accept create"),
        (lambda: upsert(records={"name": "x"}), "records must be a list"),
        (lambda: upsert(records=None), "records must be a list"),
        (lambda: upsert(records=[], match_on=""), "match_on must name a field"),
        (lambda: upsert(records=[], match_on="address.city"), "metadata key"),
        (lambda: upsert(records=[], max_workers=0), "max_workers"),
        (
            lambda: PiriodActionOperator(task_id="a", resource="invoices", action="pay", object_ids=[]),
            "no action 'pay'",
        ),
        (lambda: PiriodActionOperator(task_id="a", resource="customers", action="pause", object_ids=[]), "no action"),
        (lambda: PiriodCreateOperator(task_id="c", resource="contacts", data={}), "contacts does not accept create"),
        (lambda: PiriodCreateOperator(task_id="c", resource="customers", data=["x"]), "data must be a mapping"),
    ],
)
def test_bad_arguments_are_refused_at_parse_time(make, message):
    with pytest.raises(PiriodInputError, match=message):
        make()


def test_nothing_is_looked_up_before_execute(piriod_emulator):
    before = len(piriod_emulator.requests())
    op = upsert(records=[{"name": "x", "tax_id": "1"}])
    assert op.outlets == [piriod_asset("piriod_default", "customers")]
    assert len(piriod_emulator.requests()) == before


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"name": "x"}], r"records\[0\] has no value at match_on='tax_id'"),
        ([{"tax_id": "1"}, {"tax_id": "1"}], r"records\[0\] and records\[1\] have the same tax_id"),
        (["x"], r"records\[0\] must be a mapping"),
    ],
)
def test_bad_records_are_refused_before_any_request(piriod_emulator, records, message):
    before = len(piriod_emulator.requests())
    with pytest.raises(PiriodInputError, match=message):
        upsert(records=records).execute({})
    assert len(piriod_emulator.requests()) == before


# ---------------------------------------------------------------------- the upsert


def test_an_upsert_creates_the_new_patches_only_what_changed_and_leaves_the_rest(piriod_emulator, two_known):
    known, records = two_known
    report = upsert(records=records).execute({})
    created = by_tax_id(piriod_emulator, "T-3")
    assert report == {"created": 1, "updated": 1, "unchanged": 1, "failed": 0,
                      "ids": [known[0]["id"], created[0]["id"], known[1]["id"]]}  # fmt: skip
    assert by_tax_id(piriod_emulator, "T-2")[0]["email"] == "changed@x.example"
    sent = sorted((e["method"], e["path"]) for e in writes(piriod_emulator))
    assert sent == [("PATCH", f"/customers/{known[1]['id']}/"), ("POST", "/customers/")]
    assert created[0]["metadata"][WRITE_KEY_FIELD].startswith("af1-")


def test_running_it_again_writes_nothing(piriod_emulator, two_known):
    _, records = two_known
    upsert(records=records).execute({})
    sent = len(writes(piriod_emulator))
    again = upsert(records=records).execute({})
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert len(writes(piriod_emulator)) == sent


def test_match_on_a_metadata_key_keeps_the_other_metadata(piriod_emulator):
    existing = piriod_emulator.create("customers", name="Meta", metadata={"crm_id": "C-9", "segment": "smb"})
    report = upsert(records=[{"name": "Meta", "metadata": {"crm_id": "C-9", "tier": "gold"}}],
                    match_on="metadata.crm_id").execute({})  # fmt: skip
    assert report["updated"] == 1
    assert piriod_emulator.record("customers", existing["id"])["metadata"] == {
        "crm_id": "C-9",
        "segment": "smb",
        "tier": "gold",
    }


def test_a_refused_record_fails_the_task_after_the_others_were_written(piriod_emulator):
    records = [{"name": "Good A", "tax_id": "G-1"}, {"tax_id": "BAD-1", "email": "no-name@x.example"},
               {"name": "Good B", "tax_id": "G-2"}]  # fmt: skip
    with pytest.raises(PiriodInputError, match=r"1 of 3 customers not written: records\[1\]: name: ") as info:
        upsert(records=records, max_workers=2).execute({})
    assert "no-name@x.example" not in str(info.value)
    assert len(by_tax_id(piriod_emulator, "G-1")) == len(by_tax_id(piriod_emulator, "G-2")) == 1


def test_a_task_retried_after_a_crash_mid_batch_creates_nothing_twice(piriod_emulator):
    records = [{"name": f"Batch {n}", "tax_id": f"B-{n}"} for n in range(12)]
    # Piriod stores the first create, then the task dies before it hears back (here: its token was revoked)
    piriod_emulator.add_fault("commit_then_status", path="/customers/", method="POST", status=401)
    with pytest.raises(PiriodAuthError):
        upsert(records=records, max_workers=1).execute({})
    assert len(by_tax_id(piriod_emulator, "B-0")) == 1  # stored, though the task never heard so
    piriod_emulator.clear_faults()
    report = upsert(records=records, max_workers=4).execute({})  # the retry
    assert report["created"] == 11 and report["unchanged"] == 1
    for n in range(12):
        assert len(by_tax_id(piriod_emulator, f"B-{n}")) == 1


def test_dry_run_returns_the_plan_and_writes_nothing(piriod_emulator, two_known):
    _, records = two_known
    report = upsert(records=records, dry_run=True).execute({})
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 1)
    assert [line["action"] for line in report["plan"]] == ["unchanged", "created", "updated"]
    assert report["plan"][2]["changed"] == ["email"]
    assert writes(piriod_emulator) == []


def test_the_per_record_report_goes_to_output_path(piriod_emulator, two_known, tmp_path):
    _, records = two_known
    report = upsert(records=records, output_path=str(tmp_path / "report.ndjson")).execute({})
    lines = [json.loads(line) for line in (tmp_path / "report.ndjson").read_text().splitlines()]
    assert report["path"].endswith("report.ndjson") and "ids" not in report
    assert [line["action"] for line in lines] == ["unchanged", "created", "updated"]
    assert "k1@x.example" not in (tmp_path / "report.ndjson").read_text()  # field names, never values


def test_records_can_come_from_an_ndjson_file(piriod_emulator, tmp_path):
    path = tmp_path / "crm.ndjson"
    path.write_text("".join(jsoncodec.dumps({"name": f"File {n}", "tax_id": f"F-{n}"}) + "\n" for n in range(3)))
    assert upsert(records=f"file://{path}").execute({})["created"] == 3


def test_many_records_over_many_workers_keep_input_order(piriod_emulator):
    records = [{"name": f"Many {n}", "tax_id": f"M-{n}"} for n in range(40)]
    report = upsert(records=records, max_workers=8).execute({})
    assert report["ids"] == [by_tax_id(piriod_emulator, f"M-{n}")[0]["id"] for n in range(40)]


def test_a_long_batch_logs_progress_but_not_a_line_per_record(piriod_emulator, caplog, capfd, monkeypatch):
    caplog.set_level(logging.INFO)

    def logged() -> str:  # Airflow's structlog prints where the stdlib handlers do not see it
        out, err = capfd.readouterr()
        return caplog.text + out + err

    records = [{"name": f"Log {n}", "tax_id": f"L-{n}"} for n in range(6)]
    upsert(records=records, max_workers=1).execute({})
    first = logged()
    assert "Upserted 6 Piriod customers" in first and "done (" not in first  # a quick batch: only the summary
    monkeypatch.setattr(batch, "PROGRESS_EVERY", 0.0)  # as if each write took 30 s
    upsert(records=[dict(r, email="x@x.example") for r in records], max_workers=1).execute({})
    assert "Upsert of Piriod customers: 6 of 6 done (6 updated)" in logged()


def test_a_read_only_connection_refuses_before_any_request(piriod_emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps({**piriod_emulator.connection, "extra": {"read_only": True}})
    )
    before = len(piriod_emulator.requests())
    with pytest.raises(PiriodInputError, match="read_only"):
        upsert(records=[{"name": "x", "tax_id": "RO"}]).execute({})
    assert len(piriod_emulator.requests()) == before


# ---------------------------------------------------------------------- actions and creates


def drafts(piriod_emulator, count: int) -> list[str]:
    customer = piriod_emulator.records("customers")[0]["id"]
    return [piriod_emulator.create("invoices", customer=customer, status="draft")["id"] for _ in range(count)]


def test_an_action_counts_objects_already_done_as_unchanged(piriod_emulator):
    ids = drafts(piriod_emulator, 3)
    piriod_emulator.update("invoices", ids[0], status="finalized")
    op = PiriodActionOperator(task_id="finalize", resource="invoices", action="finalize", object_ids=ids)
    report = op.execute({})
    assert report == {"created": 0, "updated": 2, "unchanged": 1, "failed": 0, "ids": ids}
    assert {piriod_emulator.record("invoices", i)["status"] for i in ids} == {"finalized"}
    assert len(writes(piriod_emulator, "POST")) == 2


def test_an_action_dry_run_reads_and_sends_nothing(piriod_emulator):
    ids = drafts(piriod_emulator, 2)
    op = PiriodActionOperator(task_id="f", resource="invoices", action="finalize", object_ids=ids, dry_run=True)
    assert op.execute({})["updated"] == 2
    assert writes(piriod_emulator) == []


def test_create_returns_the_object_with_money_exact(piriod_emulator):
    customer = piriod_emulator.records("customers")[0]["id"]
    data = {"customer": customer, "lines": [{"description": "usage", "quantity": 1, "unit_price": Decimal("0.10")}]}
    created = PiriodCreateOperator(task_id="c", resource="invoices", data=data).execute({})
    assert created["status"] == "draft"
    assert len([i for i in piriod_emulator.records("invoices") if i["id"] == created["id"]]) == 1
