"""Odd but well-formed answers and inputs end in a typed ``PiriodError`` or a correct result, never a raw one.

Hostile servers on loopback (:mod:`tests.hostile`):
a ``count`` too big for a float, integers too big to print in ids and filters, fields nested deeper than
``copy.deepcopy`` can follow, and an empty page in the middle of a list. Every call runs under
:func:`tests.hostile.bounded`.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_piriod.exceptions import PiriodError, PiriodInputError, PiriodResponseError
from airflow_provider_piriod.hooks.piriod import PiriodHook
from tests.hostile import A, B, C, D, Conn, Request, async_ids, bounded, connect, page, sync_ids

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fast_retries", "no_environment_proxies")]

#: how long a bounded call may run before the test calls it a hang
HANG = 6.0

LIST_CALLS = {
    "sync-sequential": lambda: sync_ids(max_workers=1),
    "sync-parallel": lambda: sync_ids(max_workers=4),
    "async": async_ids,
}


# ----------------------------------------------------------------------------- huge integers

#: a valid JSON integer (401 digits, under Python's 4300-digit limit) that no float can hold
HUGE_COUNT = 10**400


def _huge_count_handler(conn: Conn, request: Request) -> None:
    body = json.dumps(page([A, B], None, count=2)).replace('"count": 2', f'"count": {HUGE_COUNT}')
    conn.respond(200, body)


@pytest.mark.parametrize("call", [*LIST_CALLS, "sync-iter_objects"])
def test_a_huge_count_is_a_typed_error_or_handled(hostile_server, monkeypatch, call):
    """A page whose ``count`` is 10**400: page arithmetic stays in integers, so the walk either returns the
    objects or fails with a ``PiriodError``, never a raw ``OverflowError``, and sends a bounded number of
    requests."""
    server = hostile_server(_huge_count_handler)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    fn = LIST_CALLS.get(call) or (lambda: [c.id for c in PiriodHook().iter_objects("customers", page_size=2)])
    outcome = bounded(fn, HANG)
    if outcome.error is not None:
        outcome.raised(PiriodError)
    assert len(server.requests) <= 3


@pytest.mark.parametrize("call", ["get_object-int-id", "get_objects-int-id", "filters-int-value", "count-int-filter"])
def test_integers_too_big_to_print_are_refused_as_input_errors(hostile_server, monkeypatch, call):
    """An id or filter value of 10**5000 (``str()`` of it raises ``ValueError`` in Python): refused with
    ``PiriodInputError`` before any request is sent."""
    server = hostile_server(lambda conn, request: conn.respond(200, page([], None)))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    big = 10**5000
    fn = {
        "get_object-int-id": lambda: PiriodHook().get_object("payments", big),
        "get_objects-int-id": lambda: PiriodHook().get_objects("payments", [1, big]),
        "filters-int-value": lambda: PiriodHook().list_objects("payments", {"amount": big}),
        "count-int-filter": lambda: PiriodHook().count_objects("payments", {"amount": big}),
    }[call]
    bounded(fn, HANG).raised(PiriodInputError)
    assert server.requests == []


# ----------------------------------------------------------------------------- deep nesting

#: json.loads accepts this depth (its limit is about 1000); copy.deepcopy does not
DEPTH = 700
DEEP_BODY = '{"id": "cus_A", "name": "Alfa", "metadata": {"x": ' + "[" * DEPTH + "]" * DEPTH + "}}"


def test_a_deeply_nested_field_survives_to_json(hostile_server, monkeypatch):
    """A customer whose metadata nests 700 lists deep: ``Customer.to_json()`` (what the operator and the sensor
    call) returns it or raises a ``PiriodError``, never a ``RecursionError``."""
    server = hostile_server(lambda conn, request: conn.respond(200, DEEP_BODY))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    customer = bounded(lambda: PiriodHook().get_customer("cus_A"), HANG).ok()
    assert customer.id == "cus_A"
    outcome = bounded(customer.to_json, HANG)
    assert outcome.error is None or isinstance(outcome.error, PiriodError), (
        f"{type(outcome.error).__name__} escaped from Customer.to_json()"
    )


def test_a_deeply_nested_field_does_not_break_the_operator(hostile_server, monkeypatch):
    """The same customer through ``PiriodCustomerOperator(customer_id=...)``: a result or a ``PiriodError``."""
    from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator

    server = hostile_server(lambda conn, request: conn.respond(200, DEEP_BODY))
    connect(monkeypatch, server, timeout=2, max_retries=0)
    op = PiriodCustomerOperator(task_id="t", customer_id="cus_A")
    outcome = bounded(lambda: op.execute({}), HANG)
    assert outcome.error is None or isinstance(outcome.error, PiriodError), (
        f"{type(outcome.error).__name__} escaped from the operator"
    )


# ----------------------------------------------------------------------------- an empty page mid-list


def _empty_second_page_handler(conn: Conn, request: Request) -> None:
    """``count`` says 6; page 2 is a well-formed but empty page without ``next`` (a glitch, a cache, a proxy)."""
    n = int(request.param("page") or 1)
    base = f"http://127.0.0.1:{conn.server.port}/customers/?page_size=2"
    if n == 1:
        conn.respond(200, page([A, B], f"{base}&page=2", count=6))
    elif n == 2:
        conn.respond(200, page([], None, count=6))
    elif n == 3:
        conn.respond(200, page([C, D], None, count=6))
    else:
        conn.respond(404, {"detail": "Invalid page."})


@pytest.mark.parametrize("client", LIST_CALLS)
def test_an_empty_page_mid_list_is_refused_not_a_silently_partial_result(hostile_server, monkeypatch, client):
    """A list that ends early on an empty page while every page says ``count=6``: the walk re-counts and refuses
    the partial list with ``PiriodResponseError`` (or returns all six), never two objects and no error."""
    server = hostile_server(_empty_second_page_handler)
    connect(monkeypatch, server, timeout=2, max_retries=0)
    outcome = bounded(LIST_CALLS[client], HANG)
    if outcome.error is None:
        assert len(outcome.value) == 6, (
            f"returned {outcome.value} without an error although every page said count=6 "
            f"(requests: {[r.target for r in server.requests]})"
        )
    else:
        outcome.raised(PiriodResponseError)
