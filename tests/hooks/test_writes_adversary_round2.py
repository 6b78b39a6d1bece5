"""Round 2 of adversarial tests of the exactly-once writes (see test_writes_adversary.py for the harness)."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import parse_qs

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodInputError,
    PiriodResponseError,
)
from airflow_provider_piriod.hooks import writes as writes_module
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD
from airflow_provider_piriod.operators.piriod import PiriodUpsertOperator
from tests.hooks.test_writes_adversary import (
    FakeInvoices,
    FakePiriod,
    create,
    is_key_lookup,
    key_of,
    lookup_fails,
    no_leak,
    posts,
    run_finalize,
    serve,
    stored_then_502,
)
from tests.hostile import TOKEN, Conn, Request, bounded, connect, exception_texts, leaked, page

pytestmark = pytest.mark.usefixtures("no_proxies", "fast_retries")

MAX_TASK_ERROR = 20_000


def gets(server: Any) -> int:
    return sum(1 for r in list(server.requests) if r.method == "GET")


# ----------------------------------------------------------------------------- look_first on a retried task


def look_first_fails(mode: str, fake: FakePiriod):
    """Lookup failure modes beyond test_writes_adversary.lookup_fails."""
    if mode not in ("no-metadata", "two-matches", "cap"):
        return lookup_fails(mode)

    def get(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        key = parse_qs(request.query)["metadata__airflow_write_key"][0]
        if mode == "no-metadata":
            conn.respond(200, page([{"id": "cus_1", "name": "x"}]))
        elif mode == "two-matches":
            objs = [{"id": f"cus_{n}", "metadata": {WRITE_KEY_FIELD: key}} for n in (1, 2)]
            conn.respond(200, page(objs))
        return True

    return get


@pytest.mark.parametrize(
    "mode", ["503", "timeout", "drop", "400", "loop", "not-a-page", "no-metadata", "two-matches", "cap"]
)
def test_look_first_whose_lookup_fails_sends_nothing_and_says_the_outcome_is_unknown(servers, monkeypatch, mode):
    """A retried task: the first try may have created the object. A lookup that cannot tell must not POST,
    and must raise PiriodAmbiguousWriteError (the rule), not an ordinary read error."""
    fake = FakePiriod()
    if mode == "cap":
        monkeypatch.setattr(writes_module, "MAX_LOOKUP_OBJECTS", 250)
        fake.ignore_filter = True
        for n in range(300):
            fake.store({"name": f"n{n}", "metadata": {WRITE_KEY_FIELD: f"other-{n}"}})
        fake.store({"name": "ours", "metadata": {WRITE_KEY_FIELD: "k-1"}})  # the first try's object, page 4
    else:
        fake.get = look_first_fails(mode, fake)
    server = serve(servers, monkeypatch, fake, timeout=1, max_retries=1)
    outcome = bounded(lambda: create(look_first=True), 30)
    assert posts(server) == 0, "a retried task created again although the lookup could not tell"
    error = outcome.raised(PiriodError)
    no_leak(error)
    assert isinstance(error, PiriodAmbiguousWriteError), (
        f"look_first lookup failure surfaced as {type(error).__name__}: {str(error)[:300]}"
    )


def test_lookup_past_the_cap_after_an_ambiguous_create_does_not_resend(servers, monkeypatch):
    monkeypatch.setattr(writes_module, "MAX_LOOKUP_OBJECTS", 250)
    fake = FakePiriod()
    fake.ignore_filter = True
    for n in range(260):
        fake.store({"name": f"n{n}", "metadata": {WRITE_KEY_FIELD: f"other-{n}"}})
    fake.post = stored_then_502(fake)
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 20)
    assert posts(server) == 1
    error = outcome.raised(PiriodAmbiguousWriteError)
    no_leak(error)


# ----------------------------------------------------------------------------- 2xx answers that are not ours


@pytest.mark.parametrize("metadata", [{}, {"crm_id": "C-9"}])
def test_a_201_showing_metadata_without_our_key_is_not_taken_as_ours(servers, monkeypatch, metadata):
    """We sent metadata with the write key; the 201 shows metadata as an object without it: another object."""
    fake = FakePiriod()

    def lie(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(201, {"id": "cus_other", "name": "Someone else", "metadata": metadata})
        return True

    fake.post = lie
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 15)
    assert posts(server) == 1
    if outcome.error is None:
        assert outcome.value["id"] != "cus_other", "a 201 for an object without our write key was returned as ours"
        assert key_of(outcome.value) == "k-1"


def test_a_numeric_write_key_coerced_to_a_number_never_leads_to_a_second_create(servers, monkeypatch):
    """Piriod stores the metadata value "20240101" as the number 20240101 (its filter still matches it).
    The write key is then never recognised: the create reports "does not exist", and the task's retry
    (look_first) creates a duplicate."""
    fake = FakePiriod()

    def coerce(conn: Conn, request: Request, data: Any) -> bool:
        meta = dict(data.get("metadata") or {})
        meta[WRITE_KEY_FIELD] = int(meta[WRITE_KEY_FIELD])
        conn.respond(201, fake.store({**data, "metadata": meta}))
        return True

    fake.post = coerce
    server = serve(servers, monkeypatch, fake)
    bounded(lambda: create(key="20240101"), 15)  # the first try: whatever it says
    bounded(lambda: create(key="20240101", look_first=True), 15)  # the retry
    assert posts(server) == 1, f"{len(fake.objects)} customers now exist for one write key"


def test_a_filtered_lookup_whose_objects_show_null_metadata_does_not_resend(servers, monkeypatch):
    """Piriod honours the metadata filter but lists objects with metadata: null. The filter says the object
    carries the key; null metadata cannot prove it does not, so the create must not be sent again."""
    fake = FakePiriod()

    def lost(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.close()
        return True

    def listed_without_metadata(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        key = parse_qs(request.query)["metadata__airflow_write_key"][0]
        objs = [{**o, "metadata": None} for o in fake.with_key(key)]
        conn.respond(200, page(objs))
        return True

    fake.post, fake.get = lost, listed_without_metadata
    server = serve(servers, monkeypatch, fake)
    bounded(create, 20)
    assert posts(server) == 1, f"{len(fake.objects)} customers created for one write key"


@pytest.mark.parametrize("key", ["clé-ünïcode-✓-請求書", "e\u0301-nfd-key"])
def test_a_unicode_write_key_normalised_by_the_server_is_found_not_resent(servers, monkeypatch, key):
    """The server stores and filters text in NFC (as many databases do). An NFD key is then listed in NFC."""
    fake = FakePiriod()

    def lost(conn: Conn, request: Request, data: Any) -> bool:
        meta = dict(data["metadata"])
        meta[WRITE_KEY_FIELD] = unicodedata.normalize("NFC", meta[WRITE_KEY_FIELD])
        fake.store({**data, "metadata": meta})
        conn.close()
        return True

    def nfc_filter(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        wanted = unicodedata.normalize("NFC", parse_qs(request.query)["metadata__airflow_write_key"][0])
        conn.respond(200, page(fake.with_key(wanted)))
        return True

    fake.post, fake.get = lost, nfc_filter
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(lambda: create(key=key), 20)
    assert posts(server) == 1, f"{len(fake.objects)} customers created for one write key"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)


# ----------------------------------------------------------------------------- the token and huge ids in errors


def two_matches_with_ids(ids: list[str]):
    def get(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        key = parse_qs(request.query)["metadata__airflow_write_key"][0]
        conn.respond(200, page([{"id": i, "metadata": {WRITE_KEY_FIELD: key}} for i in ids]))
        return True

    return get


def test_duplicate_matches_whose_ids_carry_the_token_keep_it_out_of_the_error(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = stored_then_502(fake)
    fake.get = two_matches_with_ids([f"cus_{TOKEN}", f"cus_x{TOKEN}"])
    server = serve(servers, monkeypatch, fake)
    error = bounded(create, 15).raised(PiriodError)
    assert posts(server) == 1
    no_leak(error)


def test_duplicate_matches_with_huge_ids_give_a_short_error(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = stored_then_502(fake)
    fake.get = two_matches_with_ids(["a" * 60_000, "b" * 60_000])
    server = serve(servers, monkeypatch, fake)
    error = bounded(create, 15).raised(PiriodError)
    assert posts(server) == 1
    assert len(str(error)) <= MAX_TASK_ERROR, f"the error is {len(str(error))} characters long"


def test_a_listed_object_without_metadata_whose_id_is_the_token_keeps_it_out_of_the_error(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = stored_then_502(fake)

    def get(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        conn.respond(200, page([{"id": TOKEN, "name": "x"}]))
        return True

    fake.get = get
    server = serve(servers, monkeypatch, fake)
    error = bounded(create, 15).raised(PiriodError)
    assert posts(server) == 1
    no_leak(error)


def test_an_accepted_action_whose_status_is_the_token_keeps_it_out_of_the_error(servers, monkeypatch):
    fake = FakeInvoices(
        lambda i: {"id": i, "status": TOKEN}, lambda conn, i: conn.respond(200, {"id": i, "status": TOKEN})
    )
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    error = bounded(run_finalize, 15).raised(PiriodError)
    no_leak(error)


def test_a_status_read_answering_an_object_with_a_huge_id_gives_a_short_error(servers, monkeypatch):
    fake = FakeInvoices(lambda i: {"id": "z" * 200_000, "status": "draft"}, lambda conn, i: conn.respond(500, {}))
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    error = bounded(run_finalize, 15).raised(PiriodError)
    assert fake.finalize_posts == 0
    assert len(str(error)) <= MAX_TASK_ERROR, f"the error is {len(str(error))} characters long"


def test_an_upsert_with_two_matches_of_huge_ids_gives_a_short_task_error(servers, monkeypatch):
    fake = FakePiriod()
    for n in range(25):
        for copy in range(2):
            fake.objects.append({"id": f"{n}-{copy}-" + "q" * 20_000, "tax_id": f"T{n}", "name": "x"})
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "x", "tax_id": f"T{n}"} for n in range(25)]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=1)
    error = bounded(lambda: op.execute({}), 30).raised(PiriodError)
    assert posts(server) == 0
    assert len(str(error)) <= MAX_TASK_ERROR, f"the task error is {len(str(error))} characters long"


def test_an_upsert_full_scan_object_without_the_field_whose_id_is_the_token_keeps_it_out(servers, monkeypatch):
    fake = FakePiriod()
    fake.objects.append({"id": TOKEN, "name": "no tax id"})
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "A", "tax_id": "T1"}], match_on="tax_id"
    )
    error = bounded(lambda: op.execute({}), 20).raised(PiriodError)
    assert posts(server) == 0
    no_leak(error)


# ----------------------------------------------------------------------------- actions


def test_a_done_status_in_another_case_is_not_finalized_again(servers, monkeypatch):
    """The invoice reads back as "FINALIZED": it is done; finalizing it again is a second action."""
    fake = FakeInvoices(
        lambda i: {"id": i, "status": "FINALIZED"}, lambda conn, i: conn.respond(200, {"id": i, "status": "FINALIZED"})
    )
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    bounded(run_finalize, 15)
    assert fake.finalize_posts == 0, "an invoice already FINALIZED was finalized again"


def test_an_action_answered_with_an_integer_id_counts_as_done_once(servers, monkeypatch):
    state = {"status": "draft"}

    def finalize(conn: Conn, invoice: str) -> None:
        state["status"] = "finalized"
        conn.respond(200, {"id": int(invoice), "status": "finalized"})

    fake = FakeInvoices(lambda i: {"id": int(i), "status": state["status"]}, finalize)
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    obj, acted = bounded(lambda: run_finalize("12"), 15).ok()
    assert acted and obj["status"] == "finalized" and fake.finalize_posts == 1


def test_an_ambiguous_action_whose_read_back_is_another_object_says_unknown(servers, monkeypatch):
    reads = {"n": 0}

    def status(invoice: str) -> dict[str, Any]:
        reads["n"] += 1
        if reads["n"] == 1:
            return {"id": invoice, "status": "draft"}
        return {"id": "inv_other", "status": "finalized"}

    fake = FakeInvoices(status, lambda conn, i: conn.close())
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    error = bounded(run_finalize, 15).raised(PiriodError)
    assert fake.finalize_posts == 1
    assert isinstance(error, PiriodAmbiguousWriteError), type(error).__name__
    no_leak(error)


# ----------------------------------------------------------------------------- PATCH answered with another object


def test_an_update_answered_with_another_object_is_not_returned_as_the_updated_one(servers, monkeypatch):
    def handle(conn: Conn, request: Request) -> None:
        if request.method == "PATCH":
            conn.respond(200, {"id": "cus_2", "name": "Someone else", "email": "other@example.com"})
        else:
            conn.respond(404, {"detail": "Not found."})

    connect(monkeypatch, servers(handle), max_retries=1, timeout=2)
    outcome = bounded(lambda: PiriodHook().update_object("customers", "cus_1", {"name": "ACME"}), 15)
    if outcome.error is None:
        assert outcome.value.get("id") == "cus_1", f"update of cus_1 returned {outcome.value.get('id')!r} as it"


# ----------------------------------------------------------------------------- upsert


def test_an_upsert_whose_lookup_filter_is_ignored_does_not_count_one_object_twice(servers, monkeypatch):
    """Lookups path (count/100 > records): Piriod ignores the tax_id filter and lists every object for each
    lookup. The one object matching record A is then seen by both lookups: it is one match, not two."""
    fake = FakePiriod()
    fake.ignore_filter = True
    for n in range(300):
        fake.store({"name": f"n{n}", "tax_id": f"T{n}"})
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "n5", "tax_id": "T5"}, {"name": "New", "tax_id": "NEW-1"}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=2)
    report = bounded(lambda: op.execute({}), 30).ok()
    assert report["unchanged"] == 1 and report["created"] == 1
    assert posts(server) == 1


@pytest.mark.parametrize(
    "match_on, bad",
    [
        ("tax_id", {"id": "cus_x", "name": "no field"}),
        ("metadata.crm_id", {"id": "cus_x", "name": "no metadata"}),
        ("metadata.crm_id", {"id": "cus_x", "metadata": "crm_id=C-1"}),
        ("metadata.crm_id", {"id": "cus_x", "metadata": [{"key": "crm_id", "value": "C-1"}]}),
    ],
)
def test_an_upsert_full_scan_against_an_object_without_the_field_writes_nothing(servers, monkeypatch, match_on, bad):
    fake = FakePiriod()
    fake.objects.extend([{"id": "cus_a", "tax_id": "T0", "metadata": {"crm_id": "C-0"}}, bad])
    server = serve(servers, monkeypatch, fake)
    record = {"name": "A", "tax_id": "T1"} if match_on == "tax_id" else {"name": "A", "metadata": {"crm_id": "C-1"}}
    op = PiriodUpsertOperator(
        task_id="u",
        resource="customers",
        records=[record, {**record, "tax_id": "T2", "metadata": {"crm_id": "C-2"}}],
        match_on=match_on,
    )
    error = bounded(lambda: op.execute({}), 20).raised(PiriodResponseError)
    assert posts(server) == 0
    assert not any(r.method == "PATCH" for r in server.requests)
    no_leak(error)


def test_an_upsert_with_mixed_refusals_and_an_unresolved_create_fails_as_ambiguous(servers, monkeypatch, caplog):
    """12 creates 6 at a time: odd ones refused (400), T4 stored with its answer lost, and the key lookup down.
    The task must fail as an unresolved write (not as refusals), each record posted at most once, and no
    record value (emails) in the error."""
    fake = FakePiriod()

    def post(conn: Conn, request: Request, data: Any) -> bool:
        n = int(data["tax_id"][1:])
        if n % 2:
            conn.respond(400, {"email": [f"Enter a valid email address: {data['email']}"]})
        elif n == 4:
            fake.store(data)
            conn.close()
        else:
            conn.respond(201, fake.store(data))
        return True

    def get(conn: Conn, request: Request) -> bool:
        if is_key_lookup(request):
            conn.respond(503, {"detail": "down"})
            return True
        return False

    fake.post, fake.get = post, get
    server = serve(servers, monkeypatch, fake, max_retries=1, timeout=2)
    records = [{"name": "x", "tax_id": f"T{n}", "email": f"private.person{n}@example.com"} for n in range(12)]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=6)
    error = bounded(lambda: op.execute({}), 30).raised(PiriodError)
    bodies = [r for r in list(server.requests) if r.method == "POST"]
    sent: dict[str, int] = {}
    for r in bodies:
        tax = r.raw.split(b'"tax_id":', 1)[1].split(b",", 1)[0] if b'"tax_id":' in r.raw else b"?"
        sent[tax.decode()] = sent.get(tax.decode(), 0) + 1
    assert all(n == 1 for n in sent.values()), f"records posted more than once: {sent}"
    assert isinstance(error, PiriodAmbiguousWriteError), f"{type(error).__name__}: {str(error)[:300]}"
    no_leak(error)
    texts = " ".join(exception_texts(error).values())
    assert "private.person" not in texts
    assert len(str(error)) <= MAX_TASK_ERROR
    assert not leaked(caplog.text)


def test_an_upsert_lookup_that_fails_keeps_the_matched_email_out_of_the_error(servers, monkeypatch, caplog):
    """Lookups path on email: the filtered GET fails (503). The error must not carry the email (a record
    value), e.g. through the request's URL."""
    fake = FakePiriod()
    for n in range(300):
        fake.store({"name": f"n{n}", "email": f"n{n}@example.com"})

    def get(conn: Conn, request: Request) -> bool:
        if "email=" in request.query:
            conn.respond(503, {"detail": "down"})
            return True
        return False

    fake.get = get
    server = serve(servers, monkeypatch, fake, max_retries=1, timeout=2)
    records = [{"name": "J", "email": "jane.private@example.com"}, {"name": "K", "email": "kim.secret@example.com"}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="email")
    error = bounded(lambda: op.execute({}), 30).raised(PiriodError)
    assert posts(server) == 0
    texts = " ".join(exception_texts(error).values())
    assert "jane.private" not in texts and "jane.private%40" not in texts and "kim.secret" not in texts, (
        f"a record's email is in the task error: {str(error)[:300]}"
    )
    no_leak(error)


def test_an_upsert_record_with_a_non_mapping_metadata_is_refused_before_any_request(servers, monkeypatch):
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "A", "tax_id": "T1"}, {"name": "B", "tax_id": "T2", "metadata": ["crm", "1"]}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id")
    bounded(lambda: op.execute({}), 15).raised(PiriodInputError)
    sent = [f"{r.method} {r.path}" for r in list(server.requests)]
    assert not sent, f"{sent} before the bad record was refused"


@pytest.mark.parametrize("look_first", [False, True])
def test_a_lookup_match_without_an_id_is_not_returned_as_the_created_object(servers, monkeypatch, look_first):
    """The lookup by write key lists our object with "id": null: it cannot be returned as the create's result
    (an upsert would report the id "None")."""
    fake = FakePiriod()
    fake.post = stored_then_502(fake)

    def get(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        key = parse_qs(request.query)["metadata__airflow_write_key"][0]
        conn.respond(200, page([{"id": None, "name": "ACME", "metadata": {WRITE_KEY_FIELD: key}}]))
        return True

    fake.get = get
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(lambda: create(look_first=look_first), 15)
    assert posts(server) <= 1
    if outcome.error is None:
        assert outcome.value.get("id") not in (None, ""), f"returned an object without an id: {outcome.value!r:.200}"


def test_a_write_key_stored_in_another_letter_case_stops_the_create_as_unknown(servers, monkeypatch):
    """A server whose text comparison ignores case stores "Run-7" as "run-7": the object listed cannot be told
    apart from ours, so the create is neither resent nor taken as done."""
    fake = FakePiriod()

    def lost(conn: Conn, request: Request, data: Any) -> bool:
        meta = {**data["metadata"], WRITE_KEY_FIELD: data["metadata"][WRITE_KEY_FIELD].lower()}
        fake.store({**data, "metadata": meta})
        conn.close()
        return True

    def case_blind_filter(conn: Conn, request: Request) -> bool:
        if not is_key_lookup(request):
            return False
        wanted = parse_qs(request.query)["metadata__airflow_write_key"][0].lower()
        conn.respond(200, page(fake.with_key(wanted)))
        return True

    fake.post, fake.get = lost, case_blind_filter
    server = serve(servers, monkeypatch, fake)
    error = bounded(lambda: create(key="Run-7"), 20).raised(PiriodAmbiguousWriteError)
    assert posts(server) == 1
    assert "letter case" in str(error)
    no_leak(error)


def test_a_write_key_in_decomposed_form_is_sent_composed():
    """The key a caller gives is sent in NFC, the form it is then looked up by."""
    from airflow_provider_piriod.hooks.writes import check_write_key

    assert check_write_key("e\u0301-key") == "\u00e9-key"
