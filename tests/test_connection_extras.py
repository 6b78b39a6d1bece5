"""A misspelt extra is reported with the closest known name, and a connection test shows the settings in effect."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_piriod import get_provider_info
from airflow_provider_piriod.compat import Connection
from airflow_provider_piriod.connection import KNOWN_EXTRAS, settings_from_connection, unknown_extras
from airflow_provider_piriod.hooks.piriod import PiriodHook

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def conn(extra: dict) -> Connection:
    return Connection(
        conn_id="billing", conn_type="piriod", login="acc_1", password="tok-secret", extra=json.dumps(extra)
    )


@pytest.mark.parametrize(
    ("extra", "hint"),
    [
        ({"timout": 5}, "'timout' (did you mean 'timeout'?)"),
        ({"test_mod": True}, "'test_mod' (did you mean 'test_mode'?)"),
        ({"extra__piriod__max_retry": 2}, "'extra__piriod__max_retry' (did you mean 'max_retries'?)"),
        ({"region": "eu"}, "'region' (known extras: test_mode, timeout,"),
    ],
)
def test_an_unknown_extra_is_named_with_the_closest_known_one(extra, hint, caplog):
    """The typo is logged at WARNING with a suggestion; the setting it meant keeps its default."""
    logger = logging.getLogger("piriod.tests.extras")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        settings = settings_from_connection(conn(extra), log=logger)
    assert settings.timeout == 30 and settings.test_mode is False and settings.max_retries == 5
    assert [r.levelno for r in caplog.records if r.name == logger.name] == [logging.WARNING]
    assert hint in caplog.text and "'billing'" in caplog.text
    assert "tok-secret" not in caplog.text


def test_known_extras_and_their_prefixed_forms_are_not_reported():
    """Every extra the connection reads, plainly or with the old UI's prefix, passes silently."""
    extra = {name: None for name in KNOWN_EXTRAS} | {f"extra__piriod__{name}": None for name in KNOWN_EXTRAS}
    assert unknown_extras(extra) == []


def test_the_connection_form_offers_exactly_the_known_extras():
    """The UI's fields and the parser's list are the same set, so neither can drift into a silent extra."""
    (conn_type,) = get_provider_info()["connection-types"]
    assert set(conn_type["conn-fields"]) == set(KNOWN_EXTRAS)


def test_test_connection_shows_the_effective_settings(piriod_emulator):
    """A good connection's test message: URL, workspace, mode and timeout, never the token."""
    ok, message = PiriodHook().test_connection()
    assert ok, message
    assert f"({piriod_emulator.url}, workspace {piriod_emulator.workspace}, live mode, timeout 30 s" in message
    assert piriod_emulator.token not in message


def test_test_connection_fails_on_an_unknown_extra_and_names_it(piriod_emulator, monkeypatch):
    """The request works, but a typo would silently keep a default: the test fails, naming it and the settings."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT",
        json.dumps({**piriod_emulator.connection, "extra": {"timout": 5, "test_mode": False}}),
    )
    ok, message = PiriodHook().test_connection()
    assert not ok
    assert "live mode, timeout 30 s" in message
    assert "'timout' (did you mean 'timeout'?)" in message
    assert piriod_emulator.token not in message


@pytest.mark.cli
def test_airflow_connections_test_prints_the_settings_and_the_typo(piriod_emulator):
    """`airflow connections test` fails on a misspelt extra (it printed "success" before) and says which."""
    conn_json = json.dumps({**piriod_emulator.connection, "extra": {"timout": 5, "test_mode": True}})
    result = subprocess.run(
        [AIRFLOW, "connections", "test", "piriod_default"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW_CONN_PIRIOD_DEFAULT": conn_json},
        stdin=subprocess.DEVNULL,
    )
    output = " ".join((result.stdout + result.stderr).split())  # the CLI wraps long lines
    assert "Connection failed!" in output, output  # (Airflow 2.11's CLI still exits 0 then)
    assert "test mode, timeout 30 s" in output
    assert "did you mean 'timeout'?" in output
    assert piriod_emulator.token not in output


def test_a_token_pasted_as_an_extra_key_is_shown_nowhere(piriod_emulator, monkeypatch, caplog, capfd):
    """The token as an extra's name: the test message and the unknown-extra warning say *** instead."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps({**piriod_emulator.connection, "extra": {piriod_emulator.token: ""}})
    )
    with caplog.at_level(logging.WARNING):
        ok, message = PiriodHook().test_connection()
    assert not ok
    assert "'***' (known extras:" in message
    logged = caplog.text + "".join(capfd.readouterr())
    assert "extras this provider does not read" in logged
    assert piriod_emulator.token not in message + logged
