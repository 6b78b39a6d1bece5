"""Client-independent rules: id paths, filters, next links, Retry-After, backoff, error mapping."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from email.utils import format_datetime

import pytest

from airflow_provider_piriod.exceptions import (
    PiriodAuthError,
    PiriodError,
    PiriodInputError,
    PiriodNotFoundError,
    PiriodRateLimitError,
    PiriodResponseError,
    PiriodServerError,
    PiriodValidationError,
)
from airflow_provider_piriod.protocol import (
    customer_path,
    error_from_response,
    follow_next,
    filter_params,
    parse_retry_after,
    retry_delay,
)


def next_page_url(next_url, base_url, method, path):
    return follow_next(next_url, base_url, path)


@pytest.mark.parametrize(
    ("customer_id", "path"),
    [
        ("cus_01H8XYZ", "/customers/cus_01H8XYZ/"),
        ("a/b", "/customers/a%2Fb/"),
        ("../x", "/customers/..%2Fx/"),
        ("x?y#z", "/customers/x%3Fy%23z/"),
        ("50%", "/customers/50%25/"),
        ("ñ", "/customers/%C3%B1/"),
    ],
)
def test_customer_path_is_one_encoded_segment(customer_id, path):
    assert customer_path(customer_id) == path


def test_filters_serialise_the_way_piriod_reads_them():
    assert filter_params(
        {
            "status__in": ["active", "pending"],
            "send_invoices": False,
            "created__gte": datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc),
            "created__lte": date(2026, 1, 31),
            "metadata__tier": 3,
            "amount": Decimal("1.50"),
            "search": "Andes & Co",
        }
    ) == {
        "status__in": "active,pending",
        "send_invoices": "false",
        "created__gte": "2026-01-02T03:04:00+00:00",
        "created__lte": "2026-01-31",
        "metadata__tier": "3",
        "amount": "1.50",
        "search": "Andes & Co",
    }
    assert filter_params(None) == {} and filter_params({}) == {}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([("a", 1)], "filters must be a dict"),
        ({"": "x"}, "non-empty string"),
        ({"page_size": 5}, "set by the hook"),
        ({"id__in": []}, "empty list"),
        ({"id__in": ["a,b"]}, "cannot contain ','"),
        ({"x": {"nested": 1}}, "must be a string, number"),
        ({"x": None}, "leave the filter out"),
    ],
)
def test_bad_filters_are_named(filters, message):
    with pytest.raises(PiriodInputError, match=message):
        filter_params(filters)


BASE = "https://api.piriod.com"


@pytest.mark.parametrize(
    ("next_url", "followed"),
    [
        ("https://api.piriod.com/customers/?page=2", "https://api.piriod.com/customers/?page=2"),
        ("https://API.piriod.com:443/customers/?page=2#x", "https://api.piriod.com/customers/?page=2"),
        ("http://api.piriod.com/customers/?page=2", "https://api.piriod.com/customers/?page=2"),
    ],
)
def test_next_links_on_the_configured_origin_are_followed(next_url, followed):
    assert next_page_url(next_url, BASE, "GET", "/customers/") == followed


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/customers/?page=2",
        "https://api.piriod.com.evil.example/customers/",
        "https://api.piriod.com:8443/customers/?page=2",
        "ftp://api.piriod.com/customers/",
        "/customers/?page=2",
        "",
        None,
        3,
    ],
)
def test_next_links_elsewhere_are_refused(next_url):
    with pytest.raises(PiriodResponseError):
        next_page_url(next_url, BASE, "GET", "/customers/")


def test_https_next_link_for_an_http_base_is_refused():
    with pytest.raises(PiriodResponseError, match="refusing to follow"):
        next_page_url("https://127.0.0.1:8765/customers/?page=2", "http://127.0.0.1:8765", "GET", "/customers/")


def test_retry_after_seconds_dates_and_garbage():
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("-4") == 0.0
    in_ten = format_datetime(datetime.fromtimestamp(now + 10, timezone.utc), usegmt=True)
    assert 8.5 <= parse_retry_after(in_ten, now=now) <= 10
    past = format_datetime(datetime.fromtimestamp(now - 100, timezone.utc), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 30.0), (20, 30.0)]:
        delays = [retry_delay(attempt, base=0.5, cap=30.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered


def test_backoff_honours_retry_after_up_to_its_cap():
    assert 5 <= retry_delay(1, base=0.5, cap=30, retry_after=5) <= 5.51
    assert 60 <= retry_delay(1, base=0.5, cap=30, retry_after=900, retry_after_cap=60) <= 66.01
    assert 0 <= retry_delay(1, base=0.5, cap=30, retry_after=0) <= 0.01


def _error(status, body, headers=None, reason="Reason"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return error_from_response("GET", "/customers/x/", status, reason, raw, headers or {})


def test_error_mapping():
    assert type(_error(401, {"detail": "Invalid token."})) is PiriodAuthError
    assert type(_error(403, {"detail": "no"})) is PiriodAuthError
    missing_ws = _error(400, {"non_field_errors": ["The x-simple-workspace header is required."]})
    assert type(missing_ws) is PiriodAuthError
    assert type(_error(404, {"detail": "Not found."})) is PiriodNotFoundError
    validation = _error(400, {"email": ["Enter a valid email address."], "non_field_errors": ["Bad."]})
    assert type(validation) is PiriodValidationError
    assert validation.errors == {"email": ["Enter a valid email address."], "non_field_errors": ["Bad."]}
    nested = _error(400, {"contacts": [{"email": ["Required."]}]})
    assert nested.errors == {"contacts": ["email: Required."]}
    limited = _error(429, {"detail": "Request was throttled."}, {"Retry-After": "12"})
    assert type(limited) is PiriodRateLimitError and limited.retry_after == 12.0
    assert type(_error(502, b"<html>Bad Gateway</html>")) is PiriodServerError
    assert type(_error(405, {"detail": 'Method "POST" not allowed.'})) is PiriodError


def test_error_messages_name_method_path_status_and_detail():
    error = _error(404, {"detail": "Not found."}, reason="Not Found")
    assert str(error) == "Piriod GET /customers/x/ returned 404 Not Found: Not found."
    assert (error.status_code, error.detail, error.method, error.path) == (404, "Not found.", "GET", "/customers/x/")
    html = _error(503, b"<html>\n  <h1>Service   Unavailable</h1></html>", reason="Service Unavailable")
    assert "non-JSON body: <html> <h1>Service Unavailable</h1></html>" in str(html)


def test_error_text_drops_the_token_a_proxy_echoed():
    error = error_from_response(
        "GET", "/customers/", 502, "Bad Gateway", b"upstream said Token sk_secret", {}, "sk_secret"
    )
    assert "sk_secret" not in str(error) and "***" in str(error)
