"""Fixtures the hostile-server tests of the write path share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile import HostileServers


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go straight to the loopback servers, whatever proxy the environment names."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def servers() -> Iterator[HostileServers]:
    with HostileServers() as make:
        yield make
