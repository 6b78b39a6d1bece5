"""Shared test setup: a throwaway AIRFLOW_HOME (set before Airflow is imported) and hook fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="piriod-tests-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

import pytest  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in milliseconds instead of seconds, so retry tests stay quick."""
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    monkeypatch.setattr(PiriodHook, "retry_base_delay", 0.01)
    monkeypatch.setattr(PiriodHook, "retry_max_delay", 0.05)


@pytest.fixture
def hook(piriod_emulator, fast_retries):
    """A PiriodHook on the emulator's connection (``piriod_default``)."""
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    return PiriodHook()
