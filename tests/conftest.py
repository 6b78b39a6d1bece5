"""Shared test setup: a throwaway AIRFLOW_HOME (set before Airflow is imported) and hook fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).parents[1] / "example_dags"
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="piriod-tests-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "true"  # the lineage tests turn it on for themselves only

import pytest


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "airflow3: needs Airflow 3 (skipped on Airflow 2.11)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from airflow_provider_piriod.compat import airflow_v3

    if airflow_v3():
        return
    skip = pytest.mark.skip(reason="Airflow 3 only")
    for item in items:
        if item.get_closest_marker("airflow3"):
            item.add_marker(skip)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in milliseconds instead of seconds, so retry tests stay quick."""
    from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook

    for hook_class in (PiriodHook, PiriodAsyncHook):
        monkeypatch.setattr(hook_class, "retry_base_delay", 0.01)
        monkeypatch.setattr(hook_class, "retry_max_delay", 0.05)


@pytest.fixture
def hook(piriod_emulator, fast_retries):
    """A PiriodHook on the emulator's connection (``piriod_default``)."""
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    return PiriodHook()


@pytest.fixture(scope="session")
def airflow_db():
    """A fresh SQLite metadata database in the throwaway AIRFLOW_HOME (for dag.test())."""
    from airflow.utils import db

    db.resetdb()
