"""The emulator speaks Piriod: auth, workspaces, test mode, pagination, filters, and its contract."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
import requests

from airflow_provider_piriod.testing import PiriodEmulator

SCHEMA = json.loads((Path(__file__).parent / "customer_schema.json").read_text())
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def strict(definition: str) -> jsonschema.Draft202012Validator:
    """The published schema, plus: no field Piriod does not publish."""
    schema = json.loads(json.dumps(SCHEMA))
    for sub in schema["$defs"].values():
        sub["additionalProperties"] = False
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"}, format_checker=FORMATS)


def api(emulator, path="/customers/", *, token=None, workspace=None, test_mode=None, allow_redirects=True, **params):
    headers = {
        "Authorization": f"Token {emulator.token if token is None else token}",
        "x-simple-workspace": emulator.workspace if workspace is None else workspace,
    }
    if test_mode is not None:
        headers["x-piriod-test-mode"] = test_mode
    return requests.get(
        f"{emulator.url}{path}", headers=headers, params=params, timeout=10, allow_redirects=allow_redirects
    )


@pytest.fixture(scope="module")
def big():
    with PiriodEmulator(customers=1000, seed=7) as emulator:
        yield emulator


def test_every_generated_record_matches_the_published_customer_schema():
    with PiriodEmulator(customers=2000, seed=11) as emulator:
        records = emulator.customers() + emulator.customers(test_mode=True)
    validator = strict("Customer")
    assert len(records) == 2000
    for record in records:
        validator.validate(record)
        datetime.fromisoformat(record["created"])
        datetime.fromisoformat(record["updated"])
        assert record["id"].startswith("cus_")
    assert {r["country"]["id"] for r in records} == {"CL", "MX", "CO"}
    assert {r["status"] for r in records} == {"active", "pending", "archived"}
    assert any(r["contacts"] for r in records) and any(r["metadata"] for r in records)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"token": ""}, 401),
        ({"token": "wrong"}, 401),
        ({"workspace": ""}, 400),
        ({"workspace": "acc_someone_else"}, 403),
    ],
)
def test_auth_and_workspace_errors_use_piriods_codes_and_bodies(piriod_emulator, kwargs, status):
    response = api(piriod_emulator, **kwargs)
    assert response.status_code == status
    body = response.json()
    if status == 400:
        assert body == {"non_field_errors": ["The x-simple-workspace header is required."]}
    else:
        strict("Error").validate(body)
        assert body["detail"]


def test_missing_authorization_header_is_401_with_drf_text(piriod_emulator):
    response = requests.get(f"{piriod_emulator.url}/customers/", timeout=10)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_customer_of_another_workspace_is_404(piriod_emulator):
    foreign_token = piriod_emulator.info()["other_token"]
    foreign_workspace = piriod_emulator.info()["other_workspace"]
    theirs = api(piriod_emulator, token=foreign_token, workspace=foreign_workspace).json()["results"][0]["id"]
    response = api(piriod_emulator, f"/customers/{theirs}/")
    assert response.status_code == 404
    strict("Error").validate(response.json())


def test_test_mode_records_are_visible_only_with_the_test_mode_header(big):
    live = {c["id"] for c in big.customers()}
    test = {c["id"] for c in big.customers(test_mode=True)}
    assert live and test and not live & test
    test_id = next(iter(test))
    assert api(big, f"/customers/{test_id}/").status_code == 404
    assert api(big, f"/customers/{test_id}/", test_mode="true").json()["test_mode"] is True
    assert api(big, test_mode="true", page_size=1).json()["count"] == len(test)
    assert api(big, page_size=1).json()["count"] == len(live)


def test_retrieve_returns_the_stored_record(piriod_emulator):
    record = piriod_emulator.customers()[0]
    assert api(piriod_emulator, f"/customers/{record['id']}/").json() == record


def test_path_without_trailing_slash_redirects_like_django(piriod_emulator):
    response = requests.get(f"{piriod_emulator.url}/customers", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/customers/")


def test_pages_walk_the_whole_listing_with_absolute_links(big):
    seen, url, pages = [], f"{big.url}/customers/?page_size=100&country=CL", 0
    headers = {"Authorization": f"Token {big.token}", "x-simple-workspace": big.workspace}
    while url:
        page = requests.get(url, headers=headers, timeout=10).json()
        seen += [c["id"] for c in page["results"]]
        pages += 1
        if pages > 1:
            assert page["previous"].startswith(big.url)
        url = page["next"]
        assert url is None or url.startswith(f"{big.url}/customers/?")
    expected = [c for c in big.customers() if c["country"]["id"] == "CL"]
    assert sorted(seen) == sorted(c["id"] for c in expected)
    assert len(seen) == len(set(seen)) == page["count"]
    assert pages == -(-len(expected) // 100)


def test_page_size_defaults_to_20_and_is_capped_at_100(big):
    assert len(api(big).json()["results"]) == 20
    assert len(api(big, page_size=500).json()["results"]) == 100
    assert len(api(big, page_size="zero").json()["results"]) == 20


def test_last_page_page_past_the_end_and_page_last(big):
    count = api(big, page_size=1).json()["count"]
    last_number = -(-count // 100)
    last = api(big, page_size=100, page=last_number).json()
    assert last["next"] is None and len(last["results"]) == count - 100 * (last_number - 1)
    assert api(big, page_size=100, page="last").json() == last
    past = api(big, page_size=100, page=last_number + 1)
    assert past.status_code == 404 and past.json() == {"detail": "Invalid page."}
    assert api(big, page=0).status_code == 404


def test_second_page_previous_link_drops_the_page_parameter(big):
    page = api(big, page_size=10, page=2).json()
    assert page["previous"] == f"{big.url}/customers/?page_size=10"


def test_empty_listing_is_an_empty_first_page(big):
    page = api(big, email="nobody@nowhere.invalid").json()
    assert page == {"count": 0, "next": None, "previous": None, "results": []}


def _ids(emulator, **params):
    ids, page = [], 1
    while True:
        body = api(emulator, page_size=100, page=page, **params).json()
        ids += [c["id"] for c in body["results"]]
        if not body["next"]:
            return ids
        page += 1


def test_exact_in_metadata_search_and_status_filters(big):
    everyone = big.customers()
    sample = everyone[3]
    assert _ids(big, tax_id=sample["tax_id"]) == [sample["id"]]
    assert set(_ids(big, country="MX")) == {c["id"] for c in everyone if c["country"]["id"] == "MX"}
    assert set(_ids(big, status="pending")) == {c["id"] for c in everyone if c["status"] == "pending"}
    assert set(_ids(big, status__in="pending,archived")) == {
        c["id"] for c in everyone if c["status"] in ("pending", "archived")
    }
    assert set(_ids(big, id__in=f"{everyone[0]['id']},{everyone[1]['id']}")) == {everyone[0]["id"], everyone[1]["id"]}
    assert set(_ids(big, metadata__segment="enterprise")) == {
        c["id"] for c in everyone if c["metadata"].get("segment") == "enterprise"
    }
    assert set(_ids(big, search="LOGÍSTICA")) == {c["id"] for c in everyone if "logística" in c["name"].lower()}
    assert set(_ids(big, send_invoices="false")) == {c["id"] for c in everyone if not c["send_invoices"]}


def test_created_range_filters(big):
    everyone = big.customers()
    start, end = "2025-01-01T00:00:00Z", "2025-03-31T23:59:59Z"
    expected = {c["id"] for c in everyone if start <= c["created"] <= end.replace("Z", ".999999Z")}
    assert expected
    assert set(_ids(big, created__gte=start, created__lte=end)) == expected
    assert set(_ids(big, created__gte="2025-01-01", created__lte="2025-03-31T23:59:59+00:00")) == expected


def test_invalid_date_filter_is_a_400_field_error(big):
    response = api(big, created__gte="yesterday")
    assert response.status_code == 400
    assert response.json() == {"created__gte": ["Enter a valid date/time."]}


def test_unknown_filters_are_ignored_as_piriod_does(big):
    assert api(big, page_size=1, no_such_filter="x").json()["count"] == len(big.customers())


def test_ordering_ascending_descending_and_default(big):
    default = _ids(big)
    by_created = sorted(big.customers(), key=lambda c: c["created"], reverse=True)
    assert default == [c["id"] for c in by_created]
    names = [c["name"].lower() for c in api(big, ordering="name", page_size=100).json()["results"]]
    assert names == sorted(names)
    newest_first = api(big, ordering="-created", page_size=100).json()["results"]
    assert [c["created"] for c in newest_first] == sorted((c["created"] for c in newest_first), reverse=True)


def test_seed_makes_data_deterministic():
    with PiriodEmulator(customers=20, seed=3) as first, PiriodEmulator(customers=20, seed=3) as second:
        records = first.customers()
        assert records == second.customers()
        assert (first.token, first.workspace) == (second.token, second.workspace)
    with PiriodEmulator(customers=20, seed=4) as other:
        assert {c["id"] for c in other.customers()}.isdisjoint(c["id"] for c in records)


def test_request_log_keeps_headers_without_the_token(piriod_emulator):
    api(piriod_emulator, page_size=3, country="CL")
    entry = piriod_emulator.requests()[-1]
    assert entry["path"] == "/customers/" and entry["method"] == "GET"
    assert ["country", "CL"] in entry["params"] and entry["query"] == "page_size=3&country=CL"
    assert entry["headers"]["authorization"] == "Token ***"
    assert entry["headers"]["x-simple-workspace"] == piriod_emulator.workspace
    assert entry["token_valid"] is True and entry["status"] == 200
    assert piriod_emulator.token not in json.dumps(piriod_emulator.requests())


def test_customer_changes_now_after_requests_and_after_seconds(piriod_emulator):
    created = piriod_emulator.create_customer(status="pending", name="Nueva Cuenta SpA")
    path = f"/customers/{created['id']}/"
    assert api(piriod_emulator, path).json()["status"] == "pending"
    assert created["created"] > max(c["created"] for c in piriod_emulator.customers() if c["id"] != created["id"])
    piriod_emulator.update_customer(created["id"], status="active", after_requests=2)
    assert api(piriod_emulator, path).json()["status"] == "pending"
    assert api(piriod_emulator, path).json()["status"] == "active"
    piriod_emulator.update_customer(created["id"], status="archived", after_seconds=0.3)
    assert api(piriod_emulator, path).json()["status"] == "active"
    import time

    time.sleep(0.35)
    assert api(piriod_emulator, path).json()["status"] == "archived"


@pytest.mark.piriod_emulator(customers=3, seed=99, latency_ms=120)
def test_fixture_marker_options_and_latency(piriod_emulator):
    assert piriod_emulator.info()["customers"] + piriod_emulator.info()["test_mode_customers"] == 3
    response = api(piriod_emulator, page_size=1)
    assert response.elapsed.total_seconds() >= 0.12


def test_fixture_exports_the_airflow_connection(piriod_emulator):
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_PIRIOD_DEFAULT"])
    assert conn == {
        "conn_type": "piriod",
        "host": piriod_emulator.url,
        "login": piriod_emulator.workspace,
        "password": piriod_emulator.token,
    }


def test_runs_as_a_separate_process_with_the_same_controls():
    with PiriodEmulator(customers=10, in_process=False) as emulator:
        assert api(emulator, page_size=1).json()["count"] == len(emulator.customers())
        emulator.add_fault("status", status=503)
        assert api(emulator).status_code == 503
        process = emulator._process
    assert process.poll() is not None  # stopped on exit
