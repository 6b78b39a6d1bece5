"""Round 4 of adversarial tests of the exactly-once writes (see test_writes_adversary.py for the harness)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from airflow_provider_piriod.exceptions import PiriodError
from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD, folded
from airflow_provider_piriod.operators.piriod import PiriodUpsertOperator
from tests.hooks.test_writes_adversary import FakeInvoices, FakePiriod, create, no_leak, posts, run_finalize, serve
from tests.hostile import Conn, Request, bounded, connect, exception_texts, page

pytestmark = pytest.mark.usefixtures("no_proxies", "fast_retries")

LONG_1 = "1234567890123456789012345678901"  # 31 digits: more than Decimal's default 28-digit precision
LONG_2 = "1234567890123456789012345678902"  # another value, differing in the last digit


def filler(fake: FakePiriod, n: int = 150) -> None:
    """Enough objects that the upsert looks each record up instead of scanning."""
    for i in range(n):
        fake.store({"name": f"n{i}", "tax_id": f"X{i}", "metadata": {"crm_id": f"X{i}"}})


def filtered(fake: FakePiriod, shown: Any):
    """A filtered lookup that lists the object ``shown(obj, wanted)`` for each object it matches (None: no match)."""

    def get(conn: Conn, request: Request) -> bool:
        params = {k: v[-1] for k, v in parse_qs(request.query).items() if k not in ("page", "page_size")}
        if request.path != "/customers/" or not params:
            return False
        (name, wanted), *_ = params.items()
        hits = [s for s in (shown(o, name, wanted) for o in fake.objects) if s is not None]
        conn.respond(200, page(hits))
        return True

    return get


# ----------------------------------------------------------------------------- folded(): distinct numbers


@pytest.mark.parametrize(
    ("a", "b"),
    [(LONG_1, LONG_2), ("1.0000000000000000000000000001", "1"), ("9" * 40, "1" + "0" * 40)],
    ids=["31-digits", "29th-decimal", "40-nines"],
)
def test_folded_keeps_distinct_numbers_distinct(a, b):
    """folded() normalises numbers under Decimal's default context (28 digits): numbers that differ past the
    28th digit fold equal although no server, however lenient, takes them for one number."""
    assert folded(a) != folded(b)


def test_an_upsert_record_whose_long_numeric_value_is_absent_is_created_not_failed(servers, monkeypatch):
    """The full scan shows the one customer with tax id LONG_1; the record has LONG_2, another number. The
    scan proves LONG_2 absent, yet folding rounds both to 28 digits and the record fails as "another form"."""
    fake = FakePiriod()
    fake.store({"name": "Old", "tax_id": LONG_1})
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "New", "tax_id": LONG_2}], match_on="tax_id"
    )
    report = bounded(lambda: op.execute({}), 20).ok()
    assert report["created"] == 1 and posts(server) == 1


def test_a_look_first_create_is_not_stopped_by_another_long_numeric_key(servers, monkeypatch):
    """The lookup (filter ignored) lists only an object with another 31-digit key: it proves our key absent.
    Rounded to 28 digits the two keys fold equal and the create stops as "cannot tell"."""
    fake = FakePiriod()
    fake.store({"name": "Other", "metadata": {WRITE_KEY_FIELD: LONG_2}})
    fake.ignore_filter = True
    server = serve(servers, monkeypatch, fake)
    found = bounded(lambda: create(key=LONG_1, look_first=True), 20).ok()
    assert posts(server) == 1 and str(found["id"]) != "cus_1"


def test_folded_reads_no_number_past_its_digit_and_exponent_caps():
    """A million digits, or an exponent of 100,000 nines, fold as text: no number of that size is built."""
    import unicodedata

    for text in ("9" * 1_000_000, "1." + "3" * 1_000_000, "1e" + "9" * 100_000, "\ufdfa" * 50_000, "٤" * 500_000):
        assert folded(text) == unicodedata.normalize("NFKC", text).casefold()
    assert folded("4.20e1") == folded("42") == "42"


# ----------------------------------------------------------------------------- actions read back in another form


@pytest.mark.parametrize(
    "shown",
    ["\uff26\uff29\uff2e\uff21\uff2c\uff29\uff3a\uff25\uff24", "\ufb01nalized", "finalized\u200b"],
    ids=["fullwidth", "ligature", "zwsp"],
)
def test_an_ambiguous_action_read_back_with_done_in_another_unicode_form_is_not_sent_again(servers, monkeypatch, shown):
    """finalize is sent and its answer lost; the invoice reads back "finalized" in another Unicode form (what
    folded() treats as the same text for write keys). That is no proof finalize did not happen: sending it
    again may finalize twice. Done, or an error, after one POST."""
    reads = {"n": 0}

    def status(invoice: str) -> dict[str, Any]:
        reads["n"] += 1
        return {"id": invoice, "status": "draft" if reads["n"] == 1 else shown}

    fake = FakeInvoices(status, lambda conn, i: conn.close())
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    outcome = bounded(run_finalize, 20)
    assert fake.finalize_posts == 1, f"finalize sent {fake.finalize_posts} times after its answer was lost"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        no_leak(outcome.error)


# ----------------------------------------------------------------------------- upserts: matches shown as other types


@pytest.mark.parametrize(
    ("match_on", "record", "as_shown"),
    [
        (
            "metadata.crm_id",
            {"name": "J", "metadata": {"crm_id": "C-1"}},
            lambda o: {**o, "metadata": {"crm_id": ["C-1"]}},
        ),
        (
            "metadata.crm_id",
            {"name": "J", "metadata": {"crm_id": "C-1"}},
            lambda o: {**o, "metadata": {"crm_id": {"value": "C-1"}}},
        ),
        ("tax_id", {"name": "J", "tax_id": "T-1"}, lambda o: {**o, "tax_id": None}),
        ("tax_id", {"name": "J", "tax_id": "T-1"}, lambda o: {**o, "tax_id": ["T-1"]}),
    ],
    ids=["metadata-list", "metadata-object", "field-null", "field-list"],
)
def test_an_upsert_lookup_listing_the_match_as_another_type_does_not_create_a_duplicate(
    servers, monkeypatch, match_on, record, as_shown
):
    """Piriod's filter for the record's value lists the customer, but shows the value as a list, an object or
    null. The write key path calls such a value "cannot tell"; the upsert takes it as no match and creates
    the customer a second time."""
    fake = FakePiriod()
    filler(fake)
    fake.store({"name": "Old", "tax_id": "T-1", "metadata": {"crm_id": "C-1"}})

    def shown(obj: dict[str, Any], name: str, wanted: str) -> Any:
        held = obj["metadata"].get("crm_id") if name.startswith("metadata__") else obj.get(name)
        return as_shown(obj) if held == wanted else None

    fake.get = filtered(fake, shown)
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=[record], match_on=match_on)
    outcome = bounded(lambda: op.execute({}), 30)
    assert posts(server) == 0, "a second customer was created although Piriod's filter listed the match"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        no_leak(outcome.error)


def test_an_upsert_lookup_listing_a_large_integer_stored_as_a_float_does_not_create_a_duplicate(servers, monkeypatch):
    """crm_id 12345678901234567890 stored by Piriod as a JSON float (1.2345678901234567e+19): its filter lists
    the customer, but the value shown folds to ...567000. A key stored as a float is "cannot tell" for write
    keys; for the upsert it is no match, and the customer is created again."""
    fake = FakePiriod()
    filler(fake)
    fake.store({"name": "Old", "metadata": {"crm_id": 12345678901234567890}})

    def shown(obj: dict[str, Any], name: str, wanted: str) -> Any:
        held = obj["metadata"].get("crm_id")
        if str(held) != wanted:
            return None
        return {**obj, "metadata": {"crm_id": float(held)}} if isinstance(held, int) else obj

    fake.get = filtered(fake, shown)
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "New", "metadata": {"crm_id": 12345678901234567890}}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="metadata.crm_id")
    outcome = bounded(lambda: op.execute({}), 30)
    assert posts(server) == 0, "a second customer was created for a crm_id Piriod's filter listed"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        no_leak(outcome.error)


def test_an_object_whose_float_could_be_either_of_two_records_fails_both(servers, monkeypatch):
    """Two crm_ids that one float stands for (…890 and …891), and the one object shows that float: it may be
    either record's, so neither is created or updated."""
    fake = FakePiriod()
    fake.store({"name": "Old", "metadata": {"crm_id": float(12345678901234567890)}})
    server = serve(servers, monkeypatch, fake)
    records = [
        {"name": "A", "metadata": {"crm_id": 12345678901234567890}},
        {"name": "B", "metadata": {"crm_id": 12345678901234567891}},
    ]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="metadata.crm_id")
    error = bounded(lambda: op.execute({}), 30).raised(PiriodError)
    assert "records[0]" in str(error) and "records[1]" in str(error)
    assert posts(server) == 0
    assert not any(r.method == "PATCH" for r in list(server.requests))


# ----------------------------------------------------------------------------- check_records: values equal when folded


@pytest.mark.parametrize(
    ("match_on", "records"),
    [
        ("email", [{"name": "A", "email": "Jane@Example.com"}, {"name": "B", "email": "jane@example.com"}]),
        ("metadata.crm_id", [{"name": "A", "metadata": {"crm_id": 42}}, {"name": "B", "metadata": {"crm_id": "42.0"}}]),
        ("tax_id", [{"name": "A", "tax_id": "T-1"}, {"name": "B", "tax_id": " T-1"}]),
    ],
    ids=["email-case", "number-form", "spaces"],
)
def test_records_whose_values_fold_equal_do_not_create_two_objects(servers, monkeypatch, match_on, records):
    """Two records whose values differ only in the form folded() ignores. The upsert treats such values as
    one when Piriod shows them (keyed by folded value, the record fails as "another form"), but
    check_records compares raw values: with nothing in Piriod yet, both are created, and on a Piriod that
    compares leniently that is one customer twice."""
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on=match_on)
    outcome = bounded(lambda: op.execute({}), 20)
    assert posts(server) <= 1, f"{posts(server)} customers created for values a lenient Piriod takes for one"
    if outcome.error is not None:
        assert isinstance(outcome.error, PiriodError)
        texts = " ".join(exception_texts(outcome.error).values()).lower()
        assert "jane@example.com" not in texts
