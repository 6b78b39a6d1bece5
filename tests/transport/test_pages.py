"""Which `next` links are followed: rebuilt on the configured origin and list path, or refused."""

from __future__ import annotations

import pytest

from airflow_provider_piriod.exceptions import PiriodResponseError
from airflow_provider_piriod.protocol import follow_next
from airflow_provider_piriod.transport.pages import PageWalk

BASE = "https://api.piriod.com"


@pytest.mark.parametrize(
    ("link", "sent"),
    [
        ("https://api.piriod.com/invoices/?page=2", "https://api.piriod.com/invoices/?page=2"),
        (
            "http://api.piriod.com/invoices/?page=2&page_size=100",
            "https://api.piriod.com/invoices/?page=2&page_size=100",
        ),
        ("https://API.PIRIOD.COM:443/invoices/?page=2#frag", "https://api.piriod.com/invoices/?page=2"),
    ],
)
def test_links_are_rebuilt_on_the_configured_origin(link, sent):
    assert follow_next(link, BASE, "/invoices/") == sent


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example\\@api.piriod.com/invoices/?page=2",  # requests connects to evil.example
        "https://evil.example%5C@api.piriod.com/invoices/?page=2",
        "https://user@api.piriod.com/invoices/?page=2",
        "https://user:pw@api.piriod.com/invoices/?page=2",
        "https://api.piriod.com\\invoices/?page=2",
        "https://api.piriod.com/invoices/?page=2\r\nHost: evil",
        "https://api.piriod.com/invoices/?page=2\x00",
        "https://api.piriod.com/invoices/?page=2\t",
        "https://api.piriod.com /invoices/?page=2",
        "https://api.piriod.com/customers/?page=2",  # another resource
        "https://api.piriod.com/invoices/x/?page=2",
        "https://api.piriod.com/invoices/../customers/?page=2",
        "https://api.piriod.com/__emulator__/x",
        "https://api.piriod.com:99999/invoices/?page=2",
        "http://[::1/invoices/",
        "//evil.example/invoices/",
        "/invoices/?page=2",
        "https://api.piriod.com/invoices/?" + "x" * 5000,
        {"url": "https://api.piriod.com/invoices/"},
        ["https://api.piriod.com/invoices/"],
    ],
)
def test_links_that_could_leave_the_host_or_the_list_are_refused(link):
    with pytest.raises(PiriodResponseError, match="refusing to follow 'next'"):
        follow_next(link, BASE, "/invoices/")


def test_a_base_path_prefix_is_part_of_the_listed_path():
    assert (
        follow_next("https://h.example/api/v1/invoices/?page=2", "https://h.example/api/v1", "/api/v1/invoices/")
        == "https://h.example/api/v1/invoices/?page=2"
    )


def _page(ids, next_link=None, count=1000):
    return {"count": count, "next": next_link, "results": [{"id": i} for i in ids]}


def test_a_page_back_to_one_already_read_is_caught_whatever_its_fragment_or_order():
    walk = PageWalk(BASE, "/invoices/", "invoice")
    walk.mark_read({"page_size": "2", "status": "paid"})
    with pytest.raises(PiriodResponseError, match="already read"):
        walk.next_url(_page(["a"], f"{BASE}/invoices/?status=paid&page_size=2&page=1#again"))


def test_a_page_that_brings_nothing_new_but_claims_more_ends_the_walk():
    walk = PageWalk(BASE, "/invoices/", "invoice")
    assert [o["id"] for o in walk.fresh(_page(["a", "b"], f"{BASE}/invoices/?page=2"))] == ["a", "b"]
    assert [o["id"] for o in walk.fresh(_page(["b", "c"], f"{BASE}/invoices/?page=3"))] == ["c"]
    assert walk.duplicates == 1
    with pytest.raises(PiriodResponseError, match="brought no invoice not already read"):
        walk.fresh(_page(["a", "c"], f"{BASE}/invoices/?page=4"))


def test_no_more_pages_than_the_count_allows():
    walk = PageWalk(BASE, "/invoices/", "invoice")
    first = _page(["x0", "x1"], f"{BASE}/invoices/?page=2", count=4)
    walk.first(first, {"page_size": "2"})
    walk.fresh(first)
    with pytest.raises(PiriodResponseError, match="more pages than its count allows"):
        for number in range(2, 100):
            page = _page([f"p{number}a", f"p{number}b"], f"{BASE}/invoices/?page={number + 1}")
            walk.fresh(page)
            walk.next_url(page)
    assert walk.pages <= 2 + 5 + 1


def test_integer_and_text_ids_are_one_object():
    walk = PageWalk(BASE, "/creditnotes/", "credit note")
    assert len(walk.fresh(_page([12, "12", 13]))) == 2
