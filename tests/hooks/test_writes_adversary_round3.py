"""Round 3 of adversarial tests of the exactly-once writes (see test_writes_adversary.py for the harness)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest

from airflow_provider_piriod.exceptions import PiriodError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD
from airflow_provider_piriod.operators.piriod import PiriodActionOperator, PiriodUpsertOperator
from tests.hooks.test_writes_adversary import (
    FakeInvoices,
    FakePiriod,
    create,
    is_key_lookup,
    no_leak,
    posts,
    run_finalize,
    serve,
)
from tests.hostile import TOKEN, Conn, Request, bounded, connect, exception_texts, page

pytestmark = pytest.mark.usefixtures("no_proxies", "fast_retries")


def loose_equal(stored: Any, wanted: str) -> bool:
    """How a server whose metadata is typed JSON compares a filter's text with a stored value."""
    if isinstance(stored, bool):
        return wanted.lower() == str(stored).lower()
    if isinstance(stored, (int, float)):
        try:
            return Decimal(wanted) == Decimal(str(stored))
        except ArithmeticError:
            return False
    if isinstance(stored, list):
        return any(loose_equal(v, wanted) for v in stored)
    if isinstance(stored, dict):
        return any(loose_equal(v, wanted) for v in stored.values())
    return isinstance(stored, str) and stored.strip().casefold() == wanted.strip().casefold()


# ----------------------------------------------------------------------------- a write key stored back typed


@pytest.mark.parametrize(
    ("key", "stored"),
    [
        ("20240101", 20240101.0),
        ("true", True),
        ("007", 7),
        ("1e3", 1000),
        ("k-1", ["k-1"]),
        ("k-1", {"value": "k-1"}),
        (" k-1 ", "k-1"),
    ],
    ids=["float", "bool", "leading-zeros", "exponent", "in-a-list", "in-an-object", "trimmed"],
)
def test_a_write_key_stored_back_as_another_json_type_never_leads_to_a_second_create(servers, monkeypatch, key, stored):
    """Piriod keeps metadata as typed JSON: the key text sent comes back as a float, a bool or a number
    without its leading zeros, and its filter still matches it. Whatever the lookup concludes, it cannot
    conclude "not there": the lost create must not be sent again."""
    fake = FakePiriod()

    def stored_typed_then_502(conn: Conn, request: Request, data: Any) -> bool:
        fake.store({**data, "metadata": {**data["metadata"], WRITE_KEY_FIELD: stored}})
        conn.respond(502, {"detail": "bad gateway"})
        return True

    def typed_filter(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        wanted = parse_qs(request.query)["metadata__airflow_write_key"][0]
        conn.respond(200, page([o for o in fake.objects if loose_equal(o["metadata"][WRITE_KEY_FIELD], wanted)]))
        return True

    fake.post, fake.get = stored_typed_then_502, typed_filter
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(lambda: create(key=key), 20)
    assert posts(server) == 1, f"{len(fake.objects)} customers now exist for the write key {key!r}"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        no_leak(outcome.error)


def test_a_lookup_listing_our_object_again_on_a_later_page_is_one_match(servers, monkeypatch):
    """The filtered lookup lists our object on page 1 and again (same id, an integer this time) on page 2."""
    fake = FakePiriod()

    def stored_then_502(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(502, {"detail": "bad gateway"})
        return True

    def twice(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        ours = {**fake.objects[0], "id": 77}
        others = [{"id": f"cus_o{n}", "metadata": {WRITE_KEY_FIELD: f"other-{n}"}} for n in range(99)]
        if request.param("page") in (None, "1"):
            nxt = f"http://{request.headers['host']}/customers/?{request.query}&page=2"
            conn.respond(200, page([ours, *others], nxt, count=101))
        else:
            last = {"id": "cus_o99", "metadata": {WRITE_KEY_FIELD: "other-99"}}
            conn.respond(200, page([{**ours, "id": "77"}, last], None, count=101))
        return True

    fake.post, fake.get = stored_then_502, twice
    server = serve(servers, monkeypatch, fake)
    found = bounded(create, 20).ok()
    assert str(found["id"]) == "77"
    assert posts(server) == 1


# ----------------------------------------------------------------------------- actions read back with odd statuses


@pytest.mark.parametrize(
    "shown",
    [
        {},
        {"status": None},
        {"status": 3},
        {"status": {"code": "finalized"}},
        {"status": ["finalized"]},
    ],
    ids=["missing", "null", "int", "dict", "list"],
)
def test_an_ambiguous_action_whose_read_back_status_cannot_be_read_is_not_sent_again(servers, monkeypatch, shown):
    """finalize is sent once and its answer lost; the invoice then reads back with a status that is not a
    status (missing, null, a number, an object, a list). That proves nothing about whether it was finalized:
    sending finalize again could act twice. The call must end in an error after one POST."""
    reads = {"n": 0}

    def status(invoice: str) -> dict[str, Any]:
        reads["n"] += 1
        return {"id": invoice, "status": "draft"} if reads["n"] == 1 else {"id": invoice, **shown}

    fake = FakeInvoices(status, lambda conn, i: conn.close())
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    outcome = bounded(run_finalize, 20)
    assert fake.finalize_posts == 1, f"finalize sent {fake.finalize_posts} times after its answer was lost"
    error = outcome.raised(PiriodError)
    no_leak(error)


def test_an_ambiguous_action_read_back_with_a_done_status_in_other_spacing_counts_as_done(servers, monkeypatch):
    reads = {"n": 0}

    def status(invoice: str) -> dict[str, Any]:
        reads["n"] += 1
        return {"id": invoice, "status": "draft" if reads["n"] == 1 else " finalized\n"}

    fake = FakeInvoices(status, lambda conn, i: conn.close())
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    _, acted = bounded(run_finalize, 20).ok()
    assert acted and fake.finalize_posts == 1


def test_a_dry_run_action_counts_a_done_status_in_another_case_as_unchanged(servers, monkeypatch):
    fake = FakeInvoices(lambda i: {"id": i, "status": "Finalized"}, lambda conn, i: conn.respond(500, {}))
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    op = PiriodActionOperator(
        task_id="f", resource="invoices", action="finalize", object_ids=["inv_1", "inv_2"], dry_run=True
    )
    report = bounded(lambda: op.execute({}), 20).ok()
    assert fake.finalize_posts == 0
    assert report["unchanged"] == 2 and report["updated"] == 0, report


# ----------------------------------------------------------------------------- updates answered oddly


@pytest.mark.parametrize(
    "answer",
    [[{"id": "cus_2", "name": "Someone else"}], '"cus_2"'],
    ids=["list", "string"],
)
def test_an_update_answered_with_something_other_than_the_object_is_not_returned_as_it(servers, monkeypatch, answer):
    """PATCH /customers/cus_1/ answered 200 with a list or a string: whatever it is, it is not
    customer cus_1 updated, and update_object (typed to return the object) must not hand it back as such."""

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "PATCH":
            conn.respond(200, answer)
        else:
            conn.respond(404, {"detail": "Not found."})

    connect(monkeypatch, servers(handle), max_retries=1, timeout=2)
    outcome = bounded(lambda: PiriodHook().update_object("customers", "cus_1", {"name": "ACME"}), 15)
    if outcome.error is None:
        value = outcome.value
        assert isinstance(value, dict) and str(value.get("id")) == "cus_1", (
            f"update_object returned {value!r:.200} as the updated customer"
        )
    else:
        assert isinstance(outcome.error, PiriodError)


def test_an_update_answered_with_the_integer_form_of_a_string_id_is_accepted(servers, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        if request.method == "PATCH":
            conn.respond(200, {"id": 12, "name": "ACME"})
        else:
            conn.respond(404, {"detail": "Not found."})

    connect(monkeypatch, servers(handle), max_retries=1, timeout=2)
    value = bounded(lambda: PiriodHook().update_object("customers", "12", {"name": "ACME"}), 15).ok()
    assert value["id"] == 12


# ----------------------------------------------------------------------------- upserts


def lenient_lookups(fake: FakePiriod):
    """Filtered lookups compared as a server with typed JSON and case-insensitive text does."""

    def get(conn: Conn, request: Request) -> bool:
        params = {k: v[-1] for k, v in parse_qs(request.query).items() if k not in ("page", "page_size")}
        if request.path != "/customers/" or not params:
            return False
        objects = list(fake.objects)
        for name, wanted in params.items():
            if name.startswith("metadata__"):
                field = name.split("__", 1)[1]
                objects = [o for o in objects if loose_equal((o.get("metadata") or {}).get(field), wanted)]
            else:
                objects = [o for o in objects if loose_equal(o.get(name), wanted)]
        conn.respond(200, page(objects))
        return True

    return get


@pytest.mark.parametrize(
    ("match_on", "record", "stored"),
    [
        ("email", {"name": "Jane", "email": "Jane.Doe@Example.com"}, {"email": "jane.doe@example.com"}),
        ("metadata.crm_id", {"name": "Jane", "metadata": {"crm_id": 42}}, {"metadata": {"crm_id": 42.0}}),
    ],
    ids=["email-case", "number-as-float"],
)
def test_an_upsert_whose_lookup_lists_a_match_shown_differently_does_not_create_a_duplicate(
    servers, monkeypatch, match_on, record, stored
):
    """The filtered lookup for the record's value lists an object (Piriod's filter matched it), but shows the
    value in another letter case or as a float. The record exists: creating it again is a duplicate
    customer on every run. Updating it, or failing as "cannot tell", is right."""
    fake = FakePiriod()
    for n in range(150):  # enough that the upsert looks each record up instead of scanning
        fake.store({"name": f"n{n}", "email": f"n{n}@example.org", "metadata": {"crm_id": f"X{n}"}})
    fake.store({"name": "Jane", **stored})
    fake.get = lenient_lookups(fake)
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=[record], match_on=match_on)
    outcome = bounded(lambda: op.execute({}), 30)
    assert posts(server) == 0, f"a second customer was created although Piriod listed {stored} as the match"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        texts = " ".join(exception_texts(outcome.error).values())
        assert "jane.doe" not in texts.lower()


@pytest.mark.parametrize("shown_id", ["missing", None, ""])
def test_an_upsert_lookup_listing_the_match_without_an_id_writes_nothing(servers, monkeypatch, shown_id):
    fake = FakePiriod()
    for n in range(150):
        fake.store({"name": f"n{n}", "tax_id": f"X{n}"})
    match = {"name": "Jane", "tax_id": "T1"}
    if shown_id != "missing":
        match["id"] = shown_id
    fake.objects.append(match)
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "Jane B", "tax_id": "T1"}], match_on="tax_id"
    )
    error = bounded(lambda: op.execute({}), 30).raised(PiriodError)
    assert posts(server) == 0
    assert not any(r.method == "PATCH" for r in list(server.requests))
    no_leak(error)


def test_an_upsert_lookup_listing_two_matches_with_the_token_in_upper_case_keeps_it_out(servers, monkeypatch):
    fake = FakePiriod()
    fake.objects.extend(
        [
            {"id": f"cus_{TOKEN.upper()}", "name": "x", "tax_id": "T1"},
            {"id": f"cus_{TOKEN}", "name": "y", "tax_id": "T1"},
        ]
    )
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "x", "tax_id": "T1"}], match_on="tax_id"
    )
    error = bounded(lambda: op.execute({}), 20).raised(PiriodError)
    assert posts(server) == 0
    no_leak(error)
    for text in exception_texts(error).values():
        assert TOKEN.lower() not in text.lower()


def test_an_upsert_lookup_whose_filter_matches_but_shows_null_metadata_does_not_create(servers, monkeypatch):
    """The lookup metadata__crm_id=C-1 lists the customer (Piriod's filter matched it) with "metadata": null.
    Null cannot show the record is absent; creating it again is a duplicate."""
    fake = FakePiriod()
    for n in range(150):
        fake.store({"name": f"n{n}", "metadata": {"crm_id": f"X{n}"}})
    fake.store({"name": "Jane", "metadata": {"crm_id": "C-1"}})

    def get(conn: Conn, request: Request) -> bool:
        wanted = request.param("metadata__crm_id")
        if wanted is None:
            return False
        hits = [{**o, "metadata": None} for o in fake.objects if o["metadata"].get("crm_id") == wanted]
        conn.respond(200, page(hits))
        return True

    fake.get = get
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "Jane B", "metadata": {"crm_id": "C-1"}}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="metadata.crm_id")
    outcome = bounded(lambda: op.execute({}), 30)
    assert posts(server) == 0, "a second customer was created although Piriod's filter listed the match"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        no_leak(outcome.error)


def test_an_action_on_an_object_whose_status_cannot_be_read_sends_nothing(servers, monkeypatch):
    """Before any send: an invoice shown without a status cannot be checked, so finalize is not sent."""
    fake = FakeInvoices(lambda i: {"id": i, "status": None}, lambda conn, i: conn.respond(200, {"id": i}))
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    error = bounded(run_finalize, 20).raised(PiriodError)
    assert fake.finalize_posts == 0
    assert "no status that can be read" in str(error)


def test_an_upsert_scan_finding_the_value_in_another_form_fails_that_record_and_writes_the_rest(servers, monkeypatch):
    """The full scan shows tax id "t-1 " for the record's "T-1": the same customer, most likely, but not shown
    equal. That record fails by name (nothing created for it); the other record is still created."""
    fake = FakePiriod()
    fake.store({"name": "Old", "tax_id": "t-1 "})
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "A", "tax_id": "T-1"}, {"name": "B", "tax_id": "T-2"}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id")
    error = bounded(lambda: op.execute({}), 20).raised(PiriodError)
    assert "records[0]" in str(error) and "another form" in str(error)
    assert posts(server) == 1
    assert [o["tax_id"] for o in fake.objects] == ["t-1 ", "T-2"]
