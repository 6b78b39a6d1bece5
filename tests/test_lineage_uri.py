"""The piriod:// lineage URI: one name per workspace and resource, no token, malformed URIs refused."""

from __future__ import annotations

import warnings

import pytest

from airflow_provider_piriod.compat import Asset, Connection, airflow_v3
from airflow_provider_piriod.connection import settings_from_connection
from airflow_provider_piriod.exceptions import PiriodInputError
from airflow_provider_piriod.lineage_uri import dataset_uri, parse_uri, sanitize_uri
from airflow_provider_piriod.operators.piriod import PiriodReadOperator, piriod_asset
from airflow_provider_piriod.resources import RESOURCES, get_resource

CUSTOMERS = get_resource("customers")
SECRET = "sk_live_do_not_show"


def uri_of(conn_id: str, host: str | None, workspace: str = "acc_1", token: str = SECRET) -> str:
    """The dataset URI a hook on this connection names for customers."""
    settings = settings_from_connection(
        Connection(conn_id=conn_id, conn_type="piriod", host=host, login=workspace, password=token)
    )
    return dataset_uri(settings.base_url, settings.workspace, CUSTOMERS)


def test_two_connections_to_one_workspace_name_the_same_dataset_without_the_token():
    """Different connection ids, tokens and spellings of the API URL give one URI; no token in it."""
    names = {
        uri_of("piriod_default", None),
        uri_of("billing", "https://API.piriod.com:443/", token="sk_live_other"),
        uri_of("reporting", "api.piriod.com"),
    }
    assert names == {"piriod://api.piriod.com/acc_1/customers"}
    assert SECRET not in next(iter(names))


def test_host_port_and_workspace_tell_datasets_apart():
    """Another workspace, host or non-default port is another dataset; the workspace is percent-encoded."""
    assert uri_of("a", "http://127.0.0.1:8765") == "piriod://127.0.0.1:8765/acc_1/customers"
    assert uri_of("a", "http://localhost:80") == "piriod://localhost/acc_1/customers"
    assert uri_of("a", None, workspace="acc_2") == "piriod://api.piriod.com/acc_2/customers"
    odd = uri_of("a", None, workspace="team/eu 1")
    assert odd == "piriod://api.piriod.com/team%2Feu%201/customers"
    assert parse_uri(odd)[1].workspace == "team/eu 1"
    assert uri_of("a", "https://[::1]:9000") == "piriod://[::1]:9000/acc_1/customers"


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("piriod://API.Piriod.COM/acc_1/invoices", "piriod://api.piriod.com/acc_1/invoices"),
        ("piriod://h:8/ws/reminders/pendings", "piriod://h:8/ws/reminders/pendings"),
        ("piriod://h/a%2fb/payments", "piriod://h/a%2Fb/payments"),
        ("piriod://piriod_default/customers", "piriod://piriod_default/customers"),  # operators' default outlet
    ],
)
def test_the_normalizer_accepts_reads_and_default_outlets(given, normalized):
    """Hosts are lowercased and workspaces encoded one way; the ``piriod://<conn id>/<resource>`` form passes."""
    assert sanitize_uri(parse_uri(given)[0]).geturl() == normalized


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"piriod://{SECRET}@api.piriod.com/acc_1/customers", "must not carry user info"),
        ("piriod:///acc_1/customers", "needs a host"),
        ("piriod://api.piriod.com", "needs a path of non-empty segments"),
        ("piriod://api.piriod.com/acc_1//customers", "needs a path of non-empty segments"),
        ("piriod://api.piriod.com/acc_1/customer", "must end in a Piriod resource"),
        ("piriod://api.piriod.com/a/b/customers", "must end in a Piriod resource"),
        ("piriod://api.piriod.com/acc_1/customers?test_mode=true", "takes no query or fragment"),
        ("piriod://api.piriod.com:99999/acc_1/customers", "invalid port"),
        ("https://api.piriod.com/acc_1/customers", "not a piriod:// URI"),
    ],
)
def test_the_normalizer_refuses_malformed_uris_with_a_clear_error(uri, message):
    """Each malformed shape gets a PiriodInputError (a ValueError) that names the problem and the shape."""
    from urllib.parse import urlsplit

    with pytest.raises(PiriodInputError, match=message) as caught:
        sanitize_uri(urlsplit(uri))
    assert isinstance(caught.value, ValueError)
    assert "piriod://<API host>/<workspace>/<resource>" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_airflow_normalizes_piriod_assets_through_the_registered_handler():
    """Asset() applies the provider's normalizer: the host is lowercased, the default outlets are unchanged."""
    assert Asset("piriod://API.PIRIOD.com/acc_1/customers").uri == "piriod://api.piriod.com/acc_1/customers"
    assert piriod_asset("billing", "payments").uri == "piriod://billing/payments"


def test_airflow_refuses_a_malformed_piriod_asset():
    """Airflow 3 refuses the Asset; Airflow 2.11 (non-strict) keeps it with a warning naming the problem."""
    if airflow_v3():
        with pytest.raises(ValueError, match="must end in a Piriod resource"):
            Asset("piriod://api.piriod.com/acc_1/customer")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Asset("piriod://api.piriod.com/acc_1/customer")
    assert any("must end in a Piriod resource" in str(warning.message) for warning in caught)


# ---------------------------------------------------------------------- default outlets: every conn id Airflow accepts

AIRFLOW_CONN_IDS = ["piriod:eu", "piriod#eu", "Piriod_EU", "piriod/eu", "piriod\\eu", "piriod(eu)!", "piriod.prod-1"]


@pytest.mark.parametrize("conn_id", AIRFLOW_CONN_IDS)
def test_every_conn_id_airflow_accepts_builds_a_default_outlet_naming_it(conn_id):
    """The operator builds at DAG parse; its outlet is stable under the normalizer and decodes to that conn id."""
    from urllib.parse import unquote, urlsplit

    from airflow.models.connection import sanitize_conn_id

    assert sanitize_conn_id(conn_id) == conn_id  # a conn id Airflow itself accepts
    (outlet,) = PiriodReadOperator(task_id="t", resource="invoices", filters={}, piriod_conn_id=conn_id).outlets
    normalized, name = parse_uri(outlet.uri)
    assert normalized.geturl() == outlet.uri
    assert (name.workspace, name.resource.name) == (None, "invoices")
    assert unquote(urlsplit(outlet.uri).netloc) == conn_id


def test_conn_ids_differing_in_case_or_punctuation_are_different_outlets():
    """Conn ids are case-sensitive: Piriod_EU and piriod_eu (and piriod:eu, piriod#eu) are four assets."""
    uris = {piriod_asset(conn_id, "invoices").uri for conn_id in ("Piriod_EU", "piriod_eu", "piriod:eu", "piriod#eu")}
    assert len(uris) == 4
    assert piriod_asset("Piriod_EU", "invoices").uri == "piriod://Piriod_EU/invoices"


def test_default_outlets_of_plain_conn_ids_are_unchanged():
    """The outlets DAGs already schedule on keep their URI: the conn id and the resource, as written."""
    assert piriod_asset("piriod_default", "customers").uri == "piriod://piriod_default/customers"
    assert piriod_asset("piriod_default", "reminders/rules").uri == "piriod://piriod_default/reminders/rules"
    assert piriod_asset("piriod:eu", "invoices").uri == "piriod://piriod:eu/invoices"


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_the_default_outlet_of_every_resource_reads_back_as_the_conn_id_form(resource):
    """No default outlet is misread as a workspace read, whatever '/' its resource name holds."""
    uri = piriod_asset("piriod_default", resource).uri
    name = parse_uri(uri)[1]
    assert (name.workspace, name.resource.name) == (None, resource)
    assert Asset(uri).uri == uri


# ---------------------------------------------------------------------- workspace reads: one reading, one name


@pytest.mark.parametrize("workspace", ["bulks", "reminders", "billers", "customers"])
@pytest.mark.parametrize("resource", ["invoices", "reminders/rules"])
def test_a_workspace_named_like_a_resource_round_trips(workspace, resource):
    """A host and workspace/resource path always reads as that workspace and resource, never as a longer resource."""
    uri = dataset_uri("https://api.piriod.com", workspace, get_resource(resource))
    name = parse_uri(uri)[1]
    assert (name.workspace, name.resource.name) == (workspace, resource)


@pytest.mark.parametrize(
    "spellings",
    [
        ["https://api.piriod.com", "https://api.piriod.com.", "https://API.piriod.com:443", "api.piriod.com:443"],
        ["https://[::1]:9000", "https://[0:0:0:0:0:0:0:1]:9000", "https://[0::1]:9000"],
        ["https://xn--bcher-kva.example", "https://bücher.example", "https://BÜCHER.example"],
    ],
)
def test_one_api_host_gives_one_dataset_name_that_airflow_keeps(spellings):
    """Trailing dot, IPv6 forms, IDN vs punycode and the default port all give one ASCII name Asset() keeps as is."""
    names = {uri_of("c", host) for host in spellings}
    assert len(names) == 1
    (name,) = names
    assert name.isascii()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Airflow 2.11 warns (and keeps the URI) where 3 raises
        assert Asset(name).uri == name


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("piriod://api.piriod.com:443/acc_1/invoices", "piriod://api.piriod.com/acc_1/invoices"),
        ("piriod://api.piriod.com./acc_1/invoices", "piriod://api.piriod.com/acc_1/invoices"),
        ("piriod://[0:0:0:0:0:0:0:1]:9000/acc_1/invoices", "piriod://[::1]:9000/acc_1/invoices"),
        ("piriod://xn--BCHER-kva.example/acc_1/invoices", "piriod://xn--bcher-kva.example/acc_1/invoices"),
        ("piriod://h:00443/acc_1/invoices", "piriod://h/acc_1/invoices"),
    ],
)
def test_the_normalizer_and_dataset_uri_follow_one_host_rule(given, normalized):
    """What a hook names and what a DAG author writes normalize alike: port 443 dropped, hosts in one form."""
    assert parse_uri(given)[0].geturl() == normalized


@pytest.mark.parametrize(
    "uri",
    [
        "piriod://[::1]junk/acc_1/invoices",
        "piriod://[::1]junk:8443/acc_1/invoices",
        "piriod://h:0/acc_1/invoices",
        "piriod://h:+443/acc_1/invoices",
        "piriod://h:\u096a\u096a\u096a/acc_1/invoices",
        "piriod://[zz]/acc_1/invoices",
        "piriod://[::1/acc_1/invoices",
        "piriod://h\u2100/acc_1/invoices",
        "piriod://a..b/acc_1/invoices",
        "piriod://[::1]junk/invoices",
    ],
)
def test_malformed_authorities_are_refused_with_a_piriod_input_error(uri):
    """Junk after an IPv6 literal, port 0 or non-ASCII digits, bad literals and NFKC tricks: PiriodInputError."""
    with pytest.raises(PiriodInputError, match="piriod://<API host>/<workspace>/<resource>"):
        parse_uri(uri)
