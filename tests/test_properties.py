"""Property-based checks: no id or filter can change the request path or add a query parameter."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.protocol import customer_path, filter_params

BASE = "https://api.piriod.com"


def sent_url(path: str, params: dict[str, str] | None = None) -> str:
    """The URL requests really puts on the wire for this path and query."""
    return requests.Request("GET", f"{BASE}{path}", params=params).prepare().url


@settings(max_examples=600, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_any_id_is_one_segment_or_refused(customer_id):
    try:
        path = customer_path(customer_id)
    except PiriodInputError:
        assert not customer_id.strip() or customer_id in (".", "..") or not _encodable(customer_id)
        return
    url = urlsplit(sent_url(path))
    assert (url.scheme, url.netloc) == ("https", "api.piriod.com")
    assert url.query == "" and url.fragment == ""
    segments = url.path.split("/")
    assert segments[:2] == ["", "customers"] and segments[3:] == [""] and len(segments) == 4
    assert unquote(segments[2]) == customer_id


_keys = st.text(min_size=1, max_size=30).filter(lambda k: k.strip() and k not in ("page", "page_size"))
_scalars = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.floats(allow_nan=False))
_lists = st.lists(st.text(min_size=1, max_size=20).filter(lambda v: "," not in v), min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, st.one_of(_scalars, _lists), max_size=6))
def test_filters_add_exactly_the_parameters_asked_for(filters):
    try:
        params = filter_params(filters)
    except PiriodInputError:
        assert not all(_encodable(str(k)) and _encodable(str(v)) for k, v in filters.items())
        return
    url = urlsplit(sent_url("/customers/", {**params, "page_size": "100"}))
    assert url.path == "/customers/" and url.fragment == ""
    sent = parse_qsl(url.query, keep_blank_values=True)
    assert sent == [*params.items(), ("page_size", "100")]
    for key, value in filters.items():
        if isinstance(value, bool):
            assert params[key] == ("true" if value else "false")
        elif isinstance(value, list):
            assert params[key].split(",") == value


@pytest.mark.parametrize("bad", [{"x": {"nested": 1}}, {"x": None}, {"x": []}, {"x": [None]}, {"x": object()}])
def test_unserialisable_filter_values_are_refused(bad):
    with pytest.raises(PiriodInputError):
        filter_params(bad)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
