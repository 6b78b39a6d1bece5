"""Each scripted fault does exactly what it says, targeted by path or by request number."""

from __future__ import annotations

import http.client
import time

import pytest
import requests

from tests.testing.test_emulator import api


def test_status_fault_429_carries_retry_after_and_a_json_body(piriod_emulator):
    piriod_emulator.add_fault("status", status=429, retry_after="7")
    response = api(piriod_emulator)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["detail"]
    assert api(piriod_emulator).status_code == 200  # times=1 by default


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_faults_answer_with_html_like_a_proxy(piriod_emulator, status):
    piriod_emulator.add_fault("status", status=status)
    response = api(piriod_emulator)
    assert response.status_code == status
    assert response.headers["content-type"] == "text/html"
    assert response.text.startswith("<html>")


def test_faults_target_a_path_or_the_nth_request_and_repeat_times(piriod_emulator):
    customer = piriod_emulator.customers()[0]["id"]
    piriod_emulator.add_fault("status", status=500, path=f"/customers/{customer}/", times=2)
    piriod_emulator.add_fault("status", status=502, nth=5)
    statuses = [api(piriod_emulator).status_code for _ in range(2)]
    statuses += [api(piriod_emulator, f"/customers/{customer}/").status_code for _ in range(3)]
    statuses += [api(piriod_emulator).status_code]
    assert statuses == [200, 200, 500, 500, 502, 200]
    assert [e["fault"] for e in piriod_emulator.requests()] == [None, None, "status", "status", "status", None]


def test_path_prefix_with_star_and_unlimited_times(piriod_emulator):
    piriod_emulator.add_fault("status", status=503, path="/customers/*", times=None)
    assert {api(piriod_emulator).status_code for _ in range(4)} == {503}
    piriod_emulator.clear_faults()
    assert api(piriod_emulator).status_code == 200


def _raw_get(emulator, path="/customers/"):
    """Read with http.client so a broken body is seen as it is, not as requests reports it."""
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request(
        "GET", path, headers={"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
    )
    return conn, conn.getresponse()


def test_drop_closes_the_connection_mid_body(piriod_emulator):
    piriod_emulator.add_fault("drop")
    conn, response = _raw_get(piriod_emulator)
    declared = int(response.getheader("content-length"))
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        response.read()
    assert len(excinfo.value.partial) == declared // 2  # what the emulator wrote before the drop, all of it
    conn.close()


def test_slow_body_trickles(piriod_emulator):
    piriod_emulator.add_fault("slow_body", chunk_delay=0.05, seconds=0.5)
    conn, response = _raw_get(piriod_emulator)
    started = time.monotonic()
    first = response.read(3)
    assert len(first) == 3 and time.monotonic() - started >= 0.08
    conn.close()


def test_truncated_and_invalid_json_and_non_object(piriod_emulator):
    piriod_emulator.add_fault("truncated_json")
    piriod_emulator.add_fault("invalid_json", nth=2)
    piriod_emulator.add_fault("non_object", nth=3)
    truncated = api(piriod_emulator)
    assert truncated.status_code == 200 and truncated.text.startswith('{"count"')
    with pytest.raises(ValueError):
        truncated.json()
    html = api(piriod_emulator)
    assert html.status_code == 200 and html.text.startswith("<html>")
    assert api(piriod_emulator).json() == ["not", "an", "object"]


def test_next_link_faults(piriod_emulator):
    piriod_emulator.add_fault("next_host")
    assert api(piriod_emulator, page_size=5).json()["next"].startswith("http://elsewhere.invalid/customers/?")
    piriod_emulator.add_fault("next_scheme")
    assert api(piriod_emulator, page_size=5).json()["next"].startswith(piriod_emulator.url.replace("http", "https"))
    piriod_emulator.add_fault("next_loop")
    page = api(piriod_emulator, page_size=5, page=2).json()
    assert page["next"] == f"{piriod_emulator.url}/customers/?page_size=5&page=2"
    piriod_emulator.add_fault("missing_results")
    assert "results" not in api(piriod_emulator, page_size=5).json()


def test_redirect_fault_points_elsewhere(piriod_emulator):
    piriod_emulator.add_fault("redirect")
    response = requests.get(f"{piriod_emulator.url}/customers/", allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://elsewhere.invalid/customers/"


def test_unknown_fault_kind_is_refused(piriod_emulator):
    with pytest.raises(RuntimeError, match="unknown fault kind"):
        piriod_emulator.add_fault("gremlins")


def test_reset_forgets_requests_faults_and_counter(piriod_emulator):
    piriod_emulator.add_fault("status", status=500, nth=2)
    api(piriod_emulator)
    piriod_emulator.reset()
    assert piriod_emulator.requests() == []
    assert api(piriod_emulator).status_code == 200
    assert piriod_emulator.requests()[0]["n"] == 1


def test_a_customer_created_mid_scan_shifts_later_pages(piriod_emulator):
    first = api(piriod_emulator, page_size=5).json()
    piriod_emulator.create_customer(after_requests=1, name="Signup Mid Scan SpA")
    second = api(piriod_emulator, page_size=5, page=2).json()
    assert second["results"][0] == first["results"][-1]  # offset paging repeats an item
    assert second["count"] == first["count"] + 1


def test_next_host_and_redirect_can_point_at_a_chosen_host(piriod_emulator):
    piriod_emulator.add_fault("next_host", host="127.0.0.1:9")
    assert api(piriod_emulator, page_size=5).json()["next"].startswith("http://127.0.0.1:9/customers/?")
    piriod_emulator.add_fault("redirect", host="127.0.0.1:9")
    assert api(piriod_emulator, allow_redirects=False).headers["Location"] == "http://127.0.0.1:9/customers/"


def test_rate_limit_answers_429_with_a_precise_retry_after(piriod_emulator):
    piriod_emulator.set_rate_limit(20, burst=2)
    statuses = [api(piriod_emulator) for _ in range(4)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    limited = [r for r in statuses[2:] if r.status_code == 429]
    assert limited and 0 < float(limited[0].headers["Retry-After"]) <= 0.05
    time.sleep(0.1)
    assert api(piriod_emulator).status_code == 200
    piriod_emulator.set_rate_limit(0)
    assert {api(piriod_emulator).status_code for _ in range(5)} == {200}
