"""Adversarial tests of the exactly-once writes: hostile loopback servers that lie, loop, stall and drop.

Each test scripts a small fake Piriod (:class:`FakePiriod`) on a raw-TCP server from :mod:`tests.hostile` and
checks what must hold whatever the server does: an object created at most once, a bounded number of requests,
a typed error that says the outcome is unknown when it is, and the token (and record contents) nowhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAmbiguousWriteError,
    PiriodError,
    PiriodInputError,
    PiriodResponseError,
    PiriodValidationError,
)
from airflow_provider_piriod.hooks.piriod import PiriodHook
from airflow_provider_piriod.hooks.writes import WRITE_KEY_FIELD
from airflow_provider_piriod.operators.piriod import (
    PiriodActionOperator,
    PiriodUpsertOperator,
)
from tests.hostile import (
    TOKEN,
    Conn,
    HostileServers,
    Request,
    bounded,
    connect,
    exception_texts,
    leaked,
    logs_fixture,
    page,
    stacked_gzip_bomb,
)

pytestmark = pytest.mark.usefixtures("no_proxies", "fast_retries")


# ----------------------------------------------------------------------------- fixtures and a fake Piriod


@pytest.fixture
def logs(caplog, capfd):
    return logs_fixture(caplog, capfd)


def body_of(request: Request) -> Any:
    raw = request.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in request.raw else b""
    return json.loads(raw) if raw.strip() else None


def key_of(obj: Any) -> Any:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata.get(WRITE_KEY_FIELD) if isinstance(metadata, dict) else None


class FakePiriod:
    """A little Piriod for one list resource: creates store objects, lists page and filter them.

    ``post`` (conn, request, data) -> bool may take over a POST: return True when it answered (or dropped) it.
    ``get`` (conn, request) -> bool may take over a GET the same way.
    """

    def __init__(self, path: str = "/customers/", prefix: str = "cus") -> None:
        self.path, self.prefix = path, prefix
        self.objects: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.seq = 0
        self.ignore_filter = False
        self.list_metadata = False  # show metadata as a list of {key, value}, as some APIs do
        self.post: Callable[[Conn, Request, Any], bool] | None = None
        self.get: Callable[[Conn, Request], bool] | None = None
        self.post_count = 0

    def store(self, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.seq += 1
            obj = {**data, "id": f"{self.prefix}_{self.seq}", "status": "active"}
            self.objects.append(obj)
            return self.shown(obj)

    def shown(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.list_metadata and isinstance(obj.get("metadata"), dict):
            return {**obj, "metadata": [{"key": k, "value": v} for k, v in obj["metadata"].items()]}
        return dict(obj)

    def with_key(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [o for o in self.objects if key_of(o) == key]

    def handle(self, conn: Conn, request: Request) -> None:
        if request.method == "POST" and request.path == self.path:
            with self.lock:
                self.post_count += 1
            data = body_of(request)
            if self.post is not None and self.post(conn, request, data):
                return
            conn.respond(201, self.store(data))
            return
        if request.method == "GET" and self.get is not None and self.get(conn, request):
            return
        if request.method == "GET" and request.path == self.path:
            conn.respond(200, self.list_page(request))
            return
        conn.respond(404, {"detail": "Not found."})

    def list_page(self, request: Request) -> dict[str, Any]:
        params = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        size = int(params.get("page_size", "100"))
        number = int(params.get("page", "1"))
        with self.lock:
            objects = list(self.objects)
        if not self.ignore_filter:
            for name, value in params.items():
                if name in ("page", "page_size"):
                    continue
                if name.startswith("metadata__"):
                    field = name.split("__", 1)[1]
                    objects = [o for o in objects if str((o.get("metadata") or {}).get(field)) == value]
                else:
                    objects = [o for o in objects if str(o.get(name)) == value]
        chunk = objects[(number - 1) * size : number * size]
        more = number * size < len(objects)
        next_url = None
        if more:
            next_url = f"http://{request.headers['host']}{self.path}?{urlencode({**params, 'page': number + 1})}"
        return page([self.shown(o) for o in chunk], next_url, count=len(objects))


def serve(servers: HostileServers, monkeypatch: pytest.MonkeyPatch, fake: FakePiriod, **extra: Any) -> Any:
    extra.setdefault("max_retries", 2)
    extra.setdefault("timeout", 2)
    server = servers(fake.handle)
    connect(monkeypatch, server, **extra)
    return server


def posts(server: Any, path: str | None = None) -> int:
    return sum(1 for r in list(server.requests) if r.method == "POST" and (path is None or r.path == path))


def is_key_lookup(request: Request) -> bool:
    """Whether ``request`` is the lookup of a create by its write key."""
    return "metadata__airflow_write_key" in request.query


def stored_then_502(fake: FakePiriod):
    """A POST handler that stores the object, then answers 502: a create made, its answer lost."""

    def post(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(502, {"detail": "bad gateway"})
        return True

    return post


def no_leak(exc: BaseException) -> None:
    """Neither the exception nor anything in its __cause__/__context__ chain carries the token."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for where, text in exception_texts(current).items():
            assert not leaked(text), f"{type(current).__name__}.{where} carries the token: {text[:300]}"
        current = current.__cause__ or current.__context__


def create(data: dict[str, Any] | None = None, key: str = "k-1", **kwargs: Any) -> Any:
    return PiriodHook().create_object("customers", data or {"name": "ACME"}, write_key=key, **kwargs)


# ----------------------------------------------------------------------------- creates answered with lies


def test_a_201_for_another_write_key_is_not_taken_as_the_created_object(servers, monkeypatch):
    """The POST is stored, but the 201 shows some other object (another write key): it is not ours."""
    fake = FakePiriod()

    def lie(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(201, {"id": "cus_other", "name": "Someone else", "metadata": {WRITE_KEY_FIELD: "not-k-1"}})
        return True

    fake.post = lie
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 15)
    # right: the object carrying our key (looked up), or a typed error; never another object as ours
    if outcome.error is None:
        assert key_of(outcome.value) == "k-1", f"returned {outcome.value['id']} whose write key is not ours"
    else:
        outcome.raised(PiriodResponseError, PiriodAmbiguousWriteError)
    assert posts(server) == 1


def test_a_201_without_an_id_is_resolved_by_looking_the_key_up(servers, monkeypatch):
    fake = FakePiriod()

    def no_id(conn: Conn, request: Request, data: Any) -> bool:
        stored = fake.store(data)
        conn.respond(201, {k: v for k, v in stored.items() if k != "id"})
        return True

    fake.post = no_id
    server = serve(servers, monkeypatch, fake)
    created = bounded(create, 15).ok()
    assert created["id"] == "cus_1"
    assert posts(server) == 1


def test_a_201_with_a_null_id_is_not_returned_as_a_created_object(servers, monkeypatch):
    """``{"id": null}`` is no object: it must be looked up like an answer without an id, not returned."""
    fake = FakePiriod()

    def null_id(conn: Conn, request: Request, data: Any) -> bool:
        conn.respond(201, {**fake.store(data), "id": None})
        return True

    fake.post = null_id
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 15)
    if outcome.error is None:
        assert outcome.value["id"] == "cus_1", f"returned an object with id {outcome.value['id']!r}"
    else:
        outcome.raised(PiriodResponseError)
    assert posts(server) == 1


def test_an_upsert_never_reports_the_id_none_for_a_201_with_a_null_id(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(201, {**fake.store(data), "id": None}) or True
    serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "A", "tax_id": "T1"}], match_on="tax_id"
    )
    outcome = bounded(lambda: op.execute({}), 20)
    if outcome.error is None:
        assert outcome.value["ids"] == ["cus_1"], outcome.value
    else:
        outcome.raised(PiriodResponseError)


@pytest.mark.parametrize(
    ("status", "answer"),
    [(200, "list"), (204, None), (201, "string"), (200, "empty-object")],
)
def test_a_2xx_without_an_object_is_looked_up_and_found_once(servers, monkeypatch, status, answer):
    fake = FakePiriod()

    def odd(conn: Conn, request: Request, data: Any) -> bool:
        stored = fake.store(data)
        if answer is None:
            conn.respond(204, b"", content_type=None)
        else:
            conn.respond(status, {"list": [stored], "string": "created", "empty-object": {}}[answer])
        return True

    fake.post = odd
    server = serve(servers, monkeypatch, fake)
    assert bounded(create, 15).ok()["id"] == "cus_1"
    assert posts(server) == 1 and len(fake.objects) == 1


# ----------------------------------------------------------------------------- the key lookup lies or fails


def test_two_objects_with_the_key_after_an_ambiguous_create_stop_without_a_second_post(servers, monkeypatch):
    fake = FakePiriod()

    def twice(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        fake.store(data)
        conn.respond(502, {"detail": "bad gateway"})
        return True

    fake.post = twice
    server = serve(servers, monkeypatch, fake)
    error = bounded(create, 15).raised(PiriodError)
    assert "same write key" in str(error) and "cus_1" in str(error)
    assert posts(server) == 1


def test_a_lookup_whose_filter_is_ignored_scans_every_page_and_finds_the_one(servers, monkeypatch, logs):
    fake = FakePiriod()
    for n in range(349):
        fake.store({"name": f"Other {n}", "metadata": {WRITE_KEY_FIELD: f"other-{n}"}})
    fake.ignore_filter = True

    def lost(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.close()  # stored, the answer lost
        return True

    fake.post = lost
    server = serve(servers, monkeypatch, fake)
    created = bounded(create, 20).ok()
    assert key_of(created) == "k-1" and created["id"] == "cus_350"
    assert posts(server) == 1
    assert "ignored the metadata__airflow_write_key filter" in logs()


def lookup_fails(mode: str) -> Callable[[Conn, Request], bool]:
    """A GET handler under which every lookup by write key fails in the way ``mode`` says."""

    def get(conn: Conn, request: Request) -> bool:
        if "metadata__airflow_write_key" not in request.query:
            return False
        if mode == "503":
            conn.respond(503, {"detail": f"down for maintenance {TOKEN}"})
        elif mode == "timeout":
            conn.sleep(5)
        elif mode == "drop":
            conn.close()
        elif mode == "400":
            conn.respond(400, {"metadata__airflow_write_key": ["Unknown filter."]})
        elif mode == "loop":  # a page whose `next` is itself, with new ids each time
            number = int(request.param("page") or "1")
            nxt = f"http://{request.headers['host']}/customers/?{request.query}"
            conn.respond(200, page([{"id": f"cus_loop{number}_{i}"} for i in range(100)], nxt, count=10**6))
        elif mode == "not-a-page":
            conn.respond(200, {"detail": "ok"})
        return True

    return get


@pytest.mark.parametrize("mode", ["503", "timeout", "drop", "400", "loop", "not-a-page"])
def test_a_lookup_that_fails_after_an_ambiguous_create_never_resends_and_says_the_outcome_is_unknown(
    servers, monkeypatch, mode
):
    """The create may exist and the lookup cannot tell: nothing more is sent, and the error must say the
    create may have been made (PiriodAmbiguousWriteError), not look like an ordinary read failure."""
    fake = FakePiriod()

    def stored_then_502(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(502, {"detail": "bad gateway"})
        return True

    fake.post, fake.get = stored_then_502, lookup_fails(mode)
    server = serve(servers, monkeypatch, fake, timeout=1, max_retries=1)
    outcome = bounded(create, 30)
    assert posts(server) == 1  # never a second create while the first may exist
    assert len(fake.objects) == 1
    error = outcome.raised(PiriodError)
    no_leak(error)
    assert isinstance(error, PiriodAmbiguousWriteError), (
        f"an unresolved create surfaced as {type(error).__name__}: {str(error)[:300]}"
    )


def test_an_upsert_whose_key_lookup_is_refused_does_not_report_the_record_as_refused(servers, monkeypatch):
    """The create was stored (answer lost), then the lookup is answered 400: the record is not "refused by
    Piriod" -- it may well exist. The task must fail as an unresolved write, not as a field refusal."""
    fake = FakePiriod()
    fake.post = lambda conn, request, data: (fake.store(data), conn.close()) and True
    fake.get = lookup_fails("400")
    serve(servers, monkeypatch, fake)
    op = PiriodUpsertOperator(
        task_id="u", resource="customers", records=[{"name": "A", "tax_id": "T1"}], match_on="tax_id"
    )
    error = bounded(lambda: op.execute({}), 20).raised(PiriodError)
    assert len(fake.objects) == 1
    assert "refused" not in str(error), f"an ambiguous create reported as a refusal: {str(error)[:300]}"


def test_metadata_shown_as_a_list_never_leads_to_a_second_create(servers, monkeypatch):
    """Piriod shows metadata as a list: the key lookup cannot read it, so it must not conclude "not there"."""
    fake = FakePiriod()
    fake.list_metadata = True

    def lost(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.close()
        return True

    fake.post = lost
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 20)
    assert posts(server) == 1, f"{posts(server)} POSTs: {len(fake.objects)} objects now carry the write key"
    outcome.raised(PiriodResponseError, PiriodAmbiguousWriteError)


def test_an_upsert_on_a_metadata_key_shown_as_a_list_does_not_create_a_duplicate(servers, monkeypatch):
    fake = FakePiriod()
    fake.list_metadata = True
    fake.store({"name": "Known", "metadata": {"crm_id": "C-1"}})
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "Known", "metadata": {"crm_id": "C-1"}}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="metadata.crm_id")
    outcome = bounded(lambda: op.execute({}), 20)
    assert posts(server) == 0, "the existing customer was not recognised and a second one was created"
    outcome.raised(PiriodResponseError)


# ----------------------------------------------------------------------------- refusals, redirects, deadlines


def big_refusal() -> dict[str, Any]:
    nested: Any = ["deep " + TOKEN]
    for _ in range(400):
        nested = {"x": nested}
    errors: dict[str, Any] = {f"field_{TOKEN}_{n}" + "x" * 5000: [f"bad {TOKEN} " + "y" * 20000] for n in range(60)}
    errors[TOKEN] = [TOKEN.upper()]
    errors["nested"] = nested
    return errors


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(big_refusal(), id="token-in-names-huge-nested"),
        pytest.param([f"refused {TOKEN}"] * 1000, id="a-list"),
        pytest.param(f"refused {TOKEN} " + "z" * 100000, id="a-string"),
        pytest.param({"a": {"b": {"c": [{"d": [TOKEN] * 50}] * 50}}}, id="wide-nested"),
    ],
)
@pytest.mark.parametrize("status", [400, 422])
def test_a_refusal_never_carries_the_token_and_stays_short(servers, monkeypatch, body, status):
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(status, body) or True
    server = serve(servers, monkeypatch, fake)
    error = bounded(create, 15).raised(PiriodValidationError)
    no_leak(error)
    assert len(str(error)) <= 2000 and len(repr(error.errors)) <= 50_000
    assert posts(server) == 1


def test_a_409_on_a_create_is_a_refusal_not_an_ambiguity(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(409, {"detail": f"conflict {TOKEN}"}) or True
    server = serve(servers, monkeypatch, fake)
    error = bounded(create, 15).raised(PiriodError)
    assert not isinstance(error, PiriodAmbiguousWriteError)
    no_leak(error)
    assert posts(server) == 1


def test_an_upsert_refusal_with_the_token_in_field_names_keeps_it_out_of_the_task_error(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(400, big_refusal()) or True
    serve(servers, monkeypatch, fake)
    records = [{"name": f"N{n}", "tax_id": f"T{n}"} for n in range(30)]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=4)
    error = bounded(lambda: op.execute({}), 30).raised(PiriodInputError)
    no_leak(error)
    assert len(str(error)) <= 20_000, f"the task error is {len(str(error))} characters long"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirected_create_is_never_followed_to_another_host(servers, monkeypatch, status):
    elsewhere = servers(lambda conn, request: conn.respond(201, {"id": "cus_evil"}), name="elsewhere")
    fake = FakePiriod()
    location = f"{elsewhere.url}/customers/?token={TOKEN}"
    fake.post = lambda conn, request, data: conn.respond(status, b"", headers=[("Location", location)]) or True
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 20)
    assert elsewhere.requests == [] and not elsewhere.saw(TOKEN)
    error = outcome.raised(PiriodError)
    no_leak(error)
    assert posts(server) <= 4  # bounded whatever it decides about the redirect


@pytest.mark.parametrize("kind", ["too-large", "gzip-bomb"])
def test_a_201_whose_body_breaks_the_size_cap_is_looked_up_not_resent(servers, monkeypatch, kind):
    fake = FakePiriod()

    def oversized(conn: Conn, request: Request, data: Any) -> bool:
        stored = fake.store(data)
        if kind == "too-large":
            conn.respond(201, {**stored, "padding": "p" * 300_000})
        else:
            conn.respond(201, stacked_gzip_bomb(4), headers=[("Content-Encoding", "gzip, gzip")])
        return True

    fake.post = oversized
    server = serve(servers, monkeypatch, fake, max_response_bytes=100_000)
    assert bounded(create, 20).ok()["id"] == "cus_1"
    assert posts(server) == 1 and len(fake.objects) == 1


def test_a_201_trickled_past_the_deadline_is_looked_up_not_resent(servers, monkeypatch):
    fake = FakePiriod()

    def trickle(conn: Conn, request: Request, data: Any) -> bool:
        body = json.dumps(fake.store(data)).encode()
        conn.send(conn.head(201, length=len(body)))
        conn.trickle(body, 0.2)
        return True

    fake.post = trickle
    server = serve(servers, monkeypatch, fake, timeout=1)
    outcome = bounded(create, 20)
    assert outcome.ok()["id"] == "cus_1"
    assert posts(server) == 1 and len(fake.objects) == 1


# ----------------------------------------------------------------------------- actions


class FakeInvoices:
    """``/invoices/<id>/`` and its finalize action, each answered by a scripted function."""

    def __init__(self, status: Callable[[str], Any], finalize: Callable[[Conn, str], None]) -> None:
        self.status, self.finalize = status, finalize
        self.finalize_posts = 0

    def handle(self, conn: Conn, request: Request) -> None:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET" and len(parts) == 2 and parts[0] == "invoices":
            conn.respond(200, self.status(parts[1]))
        elif request.method == "POST" and len(parts) == 3 and parts[2] == "finalize":
            self.finalize_posts += 1
            self.finalize(conn, parts[1])
        else:
            conn.respond(404, {"detail": "Not found."})


def run_finalize(invoice: str = "inv_1") -> Any:
    return PiriodHook().apply_action("invoices", invoice, "finalize")


def test_an_action_whose_status_never_reaches_done_stops_after_bounded_tries(servers, monkeypatch):
    fake = FakeInvoices(lambda i: {"id": i, "status": "draft"}, lambda conn, i: conn.respond(502, {"detail": "x"}))
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    error = bounded(run_finalize, 20).raised(PiriodAmbiguousWriteError)
    no_leak(error)
    assert fake.finalize_posts <= 4


def test_an_action_answered_200_but_never_done_is_not_counted_as_done(servers, monkeypatch):
    """finalize answers 200 with the invoice still a draft, and it stays one: the operator says "updated"."""
    fake = FakeInvoices(
        lambda i: {"id": i, "status": "draft"}, lambda conn, i: conn.respond(200, {"id": i, "status": "draft"})
    )
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    op = PiriodActionOperator(task_id="f", resource="invoices", action="finalize", object_ids=["inv_1"])
    outcome = bounded(lambda: op.execute({}), 20)
    assert fake.finalize_posts <= 4
    if outcome.error is None:
        assert outcome.value["updated"] == 0, f"an invoice still a draft was reported finalized: {outcome.value}"


def test_an_action_answered_with_another_objects_status_is_not_taken_as_done(servers, monkeypatch):
    fake = FakeInvoices(
        lambda i: {"id": i, "status": "draft"},
        lambda conn, i: conn.respond(200, {"id": "inv_OTHER", "status": "finalized"}),
    )
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    outcome = bounded(run_finalize, 20)
    if outcome.error is None:
        obj, _ = outcome.value
        assert obj["id"] == "inv_1", f"finalize of inv_1 returned {obj['id']} as its result"
    else:
        outcome.raised(PiriodResponseError)


def test_a_status_read_of_another_object_does_not_skip_the_action(servers, monkeypatch):
    """The first status read answers with another (finalized) invoice: that says nothing about inv_1."""
    fake = FakeInvoices(
        lambda i: {"id": "inv_OTHER", "status": "finalized"},
        lambda conn, i: conn.respond(200, {"id": i, "status": "finalized"}),
    )
    connect(monkeypatch, servers(fake.handle), max_retries=1, timeout=2)
    outcome = bounded(run_finalize, 20)
    if outcome.error is None:
        obj, sent = outcome.value
        assert obj["id"] == "inv_1" and sent, f"inv_1 left alone because {obj['id']} was finalized"
    else:
        outcome.raised(PiriodResponseError)


def test_an_ambiguous_action_whose_status_read_back_fails_says_the_outcome_is_unknown(servers, monkeypatch):
    reads = {"n": 0}

    def status(invoice: str) -> Any:
        reads["n"] += 1
        return {"id": invoice, "status": "draft"}

    fake = FakeInvoices(status, lambda conn, i: conn.respond(502, {"detail": "x"}))

    def handle(conn: Conn, request: Request) -> None:
        if request.method == "GET" and reads["n"] >= 1:  # every read after the first fails
            conn.respond(503, {"detail": "down"})
            return
        fake.handle(conn, request)

    connect(monkeypatch, servers(handle), max_retries=1, timeout=2)
    error = bounded(run_finalize, 20).raised(PiriodError)
    assert fake.finalize_posts == 1
    assert isinstance(error, PiriodAmbiguousWriteError), f"surfaced as {type(error).__name__}: {str(error)[:200]}"


# ----------------------------------------------------------------------------- the upsert's records


def test_records_whose_match_values_collide_after_str_are_refused_before_any_request(servers, monkeypatch):
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake)
    records = [{"name": "A", "tax_id": 1}, {"name": "B", "tax_id": "1"}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id")
    bounded(lambda: op.execute({}), 10).raised(PiriodInputError)
    assert server.requests == []


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), b"bytes", pytest.param("datetime", id="datetime"), {1, 2}],
    ids=["nan", "inf", "bytes", "datetime", "set"],
)
def test_a_record_that_cannot_be_sent_is_refused_before_any_write(servers, monkeypatch, bad):
    import datetime

    if bad == "datetime":
        bad = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake)
    records = [{"name": f"Good {n}", "tax_id": f"G{n}"} for n in range(6)] + [{"name": "Bad", "tax_id": "X", "v": bad}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=4)
    error = bounded(lambda: op.execute({}), 15).raised(PiriodInputError)
    assert "records[6]" in str(error) or "JSON" in str(error)
    assert posts(server) == 0, f"{posts(server)} records were created before the bad one was refused"


def test_decimals_go_on_the_wire_with_their_digits(servers, monkeypatch):
    fake = FakePiriod()
    server = serve(servers, monkeypatch, fake)
    bounded(lambda: create({"name": "M", "amount": Decimal("1234567890123.4567"), "rate": Decimal("0.10")}), 10).ok()
    (post,) = [r for r in server.requests if r.method == "POST"]
    assert b'"amount":1234567890123.4567' in post.raw and b'"rate":0.10' in post.raw


def test_metadata_with_non_string_values_is_kept_and_the_key_added(servers, monkeypatch):
    fake = FakePiriod()
    serve(servers, monkeypatch, fake)
    data = {"name": "M", "metadata": {"n": 1, "ok": True, "nested": {"a": [1, 2]}, WRITE_KEY_FIELD: "forged"}}
    created = bounded(lambda: create(data, key="real"), 10).ok()
    assert created["metadata"] == {"n": 1, "ok": True, "nested": {"a": [1, 2]}, WRITE_KEY_FIELD: "real"}


def test_a_huge_record_is_sent_once_and_a_413_is_not_ambiguous(servers, monkeypatch):
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(413, {"detail": "too large"}) or True
    server = serve(servers, monkeypatch, fake, timeout=5)
    error = bounded(lambda: create({"name": "x" * 3_000_000}), 20).raised(PiriodError)
    assert not isinstance(error, PiriodAmbiguousWriteError)
    assert posts(server) == 1


# ----------------------------------------------------------------------------- many workers, a flaky server


def test_sixteen_workers_against_a_server_dropping_connections_create_each_record_once(
    servers, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.INFO)
    fake = FakePiriod()
    rng = random.Random(20261207)
    rng_lock = threading.Lock()
    attempts: dict[str, int] = {}

    def flaky_post(conn: Conn, request: Request, data: Any) -> bool:
        key = key_of(data)
        with fake.lock:
            attempts[key] = attempts.get(key, 0) + 1
            attempt = attempts[key]
        if attempt > 1:
            return False
        way = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 4
        if way == 0:  # stored, the connection drops
            fake.store(data)
            conn.close()
        elif way == 1:  # dropped before it was stored
            conn.close()
        elif way == 2:  # stored, a gateway answers 502
            fake.store(data)
            conn.respond(502, {"detail": f"bad gateway {TOKEN}"})
        else:
            return False
        return True

    def flaky_get(conn: Conn, request: Request) -> bool:
        with rng_lock:
            drop = rng.random() < 0.2
        if drop:
            conn.close()
        return drop

    fake.post, fake.get = flaky_post, flaky_get
    serve(servers, monkeypatch, fake, max_retries=8, timeout=3)
    records = [{"name": f"Person {n}", "email": f"person{n}@private.example", "tax_id": f"P-{n}"} for n in range(48)]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="tax_id", max_workers=16)
    report = bounded(lambda: op.execute({}), 60).ok()
    per_tax_id: dict[str, int] = {}
    for obj in fake.objects:
        per_tax_id[obj["tax_id"]] = per_tax_id.get(obj["tax_id"], 0) + 1
    assert per_tax_id == {f"P-{n}": 1 for n in range(48)}
    assert report["created"] == 48 and len(set(report["ids"])) == 48
    assert not leaked(json.dumps(report))
    out, err = capfd.readouterr()
    shown = "\n".join(r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG) + out + err
    assert not leaked(shown)
    assert "private.example" not in shown and "Person 1" not in shown


# ----------------------------------------------------------------------------- what logs, errors and XCom show


def test_a_refused_record_matched_on_email_keeps_the_email_out_of_the_task_error(servers, monkeypatch, caplog):
    """Record contents are personal data: the task error (logged by Airflow at ERROR) names each refused
    record by its match value, which here is an email address."""
    caplog.set_level(logging.INFO)
    fake = FakePiriod()
    fake.post = lambda conn, request, data: conn.respond(400, {"name": ["This field is required."]}) or True
    serve(servers, monkeypatch, fake)
    records = [{"email": "jane.doe@private.example"}]
    op = PiriodUpsertOperator(task_id="u", resource="customers", records=records, match_on="email")
    error = bounded(lambda: op.execute({}), 15).raised(PiriodInputError)
    shown = "\n".join(r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
    assert "jane.doe@private.example" not in shown
    assert "jane.doe@private.example" not in str(error), str(error)


def test_an_ambiguous_create_logs_neither_the_token_nor_the_record(servers, monkeypatch, caplog, capfd):
    caplog.set_level(logging.INFO)
    fake = FakePiriod()

    def echo(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(503, {"detail": f"upstream {TOKEN} for {data['email']}"}, reason=f"Bad {TOKEN}")
        return True

    fake.post = echo
    serve(servers, monkeypatch, fake)
    created = bounded(lambda: create({"name": "Jane Private", "email": "jane@private.example"}), 15).ok()
    assert created["id"] == "cus_1"
    out, err = capfd.readouterr()
    shown = "\n".join(r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG) + out + err
    assert not leaked(shown)
    assert "Jane Private" not in shown


def test_a_lookup_that_ignores_the_filter_and_claims_a_million_objects_ends_in_bounded_time(servers, monkeypatch):
    """After an ambiguous create, the lookup's server ignores the filter and serves fresh pages up to a
    claimed count of 1,000,000 (10,000 pages): the scan for one write key must be bounded, not read them all."""
    fake = FakePiriod()

    def stored_then_502(conn: Conn, request: Request, data: Any) -> bool:
        fake.store(data)
        conn.respond(502, {"detail": "bad gateway"})
        return True

    def endless(conn: Conn, request: Request) -> bool:
        number = int(request.param("page") or "1")
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        nxt = f"http://{request.headers['host']}/customers/?{urlencode({**query, 'page': number + 1})}"
        results = [{"id": f"cus_p{number}_{i}", "metadata": {WRITE_KEY_FIELD: "x"}} for i in range(100)]
        conn.respond(200, page(results, nxt, count=1_000_000))
        return True

    fake.post, fake.get = stored_then_502, endless
    server = serve(servers, monkeypatch, fake)
    outcome = bounded(create, 15)
    assert posts(server) == 1
    outcome.raised(PiriodError)
    lookups = sum(1 for r in list(server.requests) if r.method == "GET")
    # locally 10,006 pages take ~10 s; at 100 ms a page on a real network, ~17 minutes for one write key
    assert lookups <= 1000, f"one write-key lookup read {lookups} pages before it gave up"


def test_sixteen_workers_finalizing_against_a_flaky_server_finalize_each_invoice_once(servers, monkeypatch):
    statuses = {f"inv_{n}": "draft" for n in range(32)}
    finalized: dict[str, int] = {}
    lock = threading.Lock()
    rng = random.Random(7)

    def handle(conn: Conn, request: Request) -> None:
        parts = [p for p in request.path.split("/") if p]
        with lock:
            drop = rng.random() < 0.25
        if request.method == "GET" and len(parts) == 2:
            if drop:
                conn.close()
                return
            conn.respond(200, {"id": parts[1], "status": statuses[parts[1]]})
        elif request.method == "POST" and len(parts) == 3 and parts[2] == "finalize":
            with lock:
                finalized[parts[1]] = finalized.get(parts[1], 0) + 1
                statuses[parts[1]] = "finalized"
            if drop:
                conn.close()  # done, the answer lost
                return
            conn.respond(200, {"id": parts[1], "status": "finalized"})
        else:
            conn.respond(404, {"detail": "Not found."})

    connect(monkeypatch, servers(handle), max_retries=8, timeout=3)
    op = PiriodActionOperator(
        task_id="f", resource="invoices", action="finalize", object_ids=list(statuses), max_workers=16
    )
    report = bounded(lambda: op.execute({}), 30).ok()
    assert finalized == {invoice: 1 for invoice in statuses}
    assert report["updated"] == 32
