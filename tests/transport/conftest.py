"""Fixtures for the transport tests that talk to hostile loopback servers (see :mod:`tests.hostile`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile import HostileServers, logs_fixture

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def hostile_server() -> Iterator[HostileServers]:
    """``hostile_server(handler)`` starts a loopback server; all of them stop when the test ends."""
    with HostileServers() as make:
        yield make


@pytest.fixture
def logs(caplog, capfd):
    """``logs()``: everything logged or printed so far (stdlib records and Airflow's structlog output)."""
    return logs_fixture(caplog, capfd)


@pytest.fixture
def no_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the machine (in either case): only those a test sets itself."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch
