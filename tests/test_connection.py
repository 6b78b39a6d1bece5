"""Connection parsing: URI and JSON forms, host variants, extras, and clear errors for bad ones."""

from __future__ import annotations

import json

import pytest

from airflow_provider_piriod.compat import Connection
from airflow_provider_piriod.connection import settings_from_connection
from airflow_provider_piriod.exceptions import PiriodConfigError
from airflow_provider_piriod.hooks.piriod import PiriodHook


def conn(**fields) -> Connection:
    extra = fields.pop("extra", None)
    fields.setdefault("login", "acc_123")
    fields.setdefault("password", "tok")
    return Connection(conn_id="piriod_test", conn_type="piriod", extra=json.dumps(extra) if extra else None, **fields)


@pytest.mark.parametrize(
    ("fields", "base_url"),
    [
        ({}, "https://api.piriod.com"),
        ({"host": ""}, "https://api.piriod.com"),
        ({"host": "api.piriod.com"}, "https://api.piriod.com"),
        ({"host": "https://api.piriod.com/"}, "https://api.piriod.com"),
        ({"host": "HTTPS://api.piriod.com"}, "https://api.piriod.com"),
        ({"host": "api.piriod.com:8443"}, "https://api.piriod.com:8443"),
        ({"host": "api.piriod.com", "port": 8443}, "https://api.piriod.com:8443"),
        ({"host": "https://proxy.example.com/piriod/"}, "https://proxy.example.com/piriod"),
        ({"host": "http://127.0.0.1:8765"}, "http://127.0.0.1:8765"),
        ({"host": "http://127.0.0.1:8765", "port": 0}, "http://127.0.0.1:8765"),  # the UI's empty port
        ({"host": "http://127.8.9.10"}, "http://127.8.9.10"),
        ({"host": "http://localhost:8000"}, "http://localhost:8000"),
        ({"host": "http://[::1]:8000"}, "http://[::1]:8000"),
        ({"host": "127.0.0.1", "port": 8765, "schema": "http"}, "http://127.0.0.1:8765"),
        ({"host": "http://piriod.internal", "extra": {"allow_insecure_http": "true"}}, "http://piriod.internal"),
    ],
)
def test_host_variants(fields, base_url):
    assert settings_from_connection(conn(**fields)).base_url == base_url


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": None}, r"password \(API token\) is required"),
        ({"password": "  "}, r"password \(API token\) is required"),
        ({"login": None}, r"login \(workspace\) is required"),
        ({"login": "acc\n1"}, "line break"),
        ({"host": "http://api.piriod.com"}, "plain http is only allowed for loopback"),
        ({"host": "http://10.0.0.5"}, "plain http is only allowed for loopback"),
        ({"host": "ftp://api.piriod.com"}, "must use https://"),
        ({"host": "api.piriod.com:99999"}, "invalid port"),
        ({"host": "api.piriod.com:abc"}, "invalid port"),
        ({"host": "api.piriod.com", "port": 70000}, "between 1 and 65535"),
        ({"host": "api.piriod.com:443", "port": 8443}, "host says port 443 but the port field says 8443"),
        ({"host": "https://user:pw@api.piriod.com"}, "plain URL"),
        ({"host": "https://api.piriod.com/?x=1"}, "plain URL"),
        ({"host": "api piriod.com"}, "whitespace"),
        ({"extra": {"test_mode": "maybe"}}, "test_mode must be true or false, got 'maybe'"),
        ({"extra": {"timeout": -1}}, "timeout must be more than 0 and at most 3600 seconds, got -1"),
        ({"extra": {"timeout": 0}}, "timeout must be more than 0 and at most 3600 seconds, got 0"),
        ({"extra": {"timeout": "soon"}}, "timeout must be a number"),
        ({"extra": {"max_retries": "x"}}, "max_retries must be a whole number"),
        ({"extra": {"max_retries": 99}}, "max_retries must be between 0 and 20"),
    ],
)
def test_bad_connections_are_refused_with_the_field_named(fields, message):
    with pytest.raises(PiriodConfigError, match=message) as excinfo:
        settings_from_connection(conn(**fields))
    assert "piriod_test" in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("", False),
        (None, False),
    ],
)
def test_test_mode_accepts_booleans_and_their_strings(value, expected):
    extra = {"test_mode": value} if value is not None else None
    assert settings_from_connection(conn(extra=extra)).test_mode is expected


def test_prefixed_extras_from_older_uis_are_read():
    settings = settings_from_connection(conn(extra={"extra__piriod__test_mode": True, "extra__piriod__timeout": "7"}))
    assert settings.test_mode is True and settings.timeout == 7.0


def test_defaults():
    settings = settings_from_connection(conn())
    assert (settings.test_mode, settings.timeout, settings.max_retries) == (False, 30.0, 5)
    assert settings.headers == {
        "x-simple-workspace": "acc_123",
        "x-piriod-test-mode": "false",
        "Accept": "application/json",
    }


def test_hook_arguments_override_extras():
    settings = settings_from_connection(
        conn(extra={"test_mode": "false", "timeout": 9, "max_retries": 4}), test_mode=True, timeout=2, max_retries=0
    )
    assert (settings.test_mode, settings.timeout, settings.max_retries) == (True, 2.0, 0)


def test_uri_form_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT",
        "piriod://acc_123:p%40ss%2Fword@api.piriod.com?test_mode=true&timeout=5&max_retries=2",
    )
    settings = PiriodHook().settings
    assert settings.base_url == "https://api.piriod.com"
    assert (settings.workspace, settings.token) == ("acc_123", "p@ss/word")
    assert (settings.test_mode, settings.timeout, settings.max_retries) == (True, 5.0, 2)


def test_uri_form_for_a_local_emulator(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_LOCAL", "piriod://acc_1:tok@127.0.0.1:8765/http")
    assert PiriodHook("piriod_local").settings.base_url == "http://127.0.0.1:8765"


def test_json_form_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_JSON",
        json.dumps(
            {
                "conn_type": "piriod",
                "host": "https://api.piriod.com",
                "login": "acc_9",
                "password": "tok",
                "extra": {"test_mode": True, "timeout": 12.5},
            }
        ),
    )
    settings = PiriodHook("piriod_json", max_retries=1).settings
    assert (settings.workspace, settings.test_mode, settings.timeout, settings.max_retries) == ("acc_9", True, 12.5, 1)


def test_missing_connection_raises_airflows_not_found(monkeypatch):
    from airflow_provider_piriod.compat import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        _ = PiriodHook("piriod_nowhere").settings


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_response_bytes": "big"}, "max_response_bytes must be a whole number"),
        ({"max_response_bytes": 100}, "max_response_bytes must be at least 1024, got 100"),
    ],
)
def test_bad_response_size_caps_are_refused(extra, message):
    with pytest.raises(PiriodConfigError, match=message):
        settings_from_connection(conn(extra=extra))
    assert settings_from_connection(conn(extra={"max_response_bytes": "4096"})).max_response_bytes == 4096
