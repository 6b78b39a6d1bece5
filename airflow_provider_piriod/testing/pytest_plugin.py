"""pytest plugin (``pytest11`` entry point): the ``piriod_emulator`` and ``piriod_airflow`` fixtures.

Loaded by every pytest run where this provider is installed, so it imports nothing heavy and
starts nothing until a test asks for a fixture. It changes Airflow's environment only when the
project asks for it with the ``piriod_dags_folder`` ini option.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

_DAGS_FOLDER_OPTION = "piriod_dags_folder"
_HOME_KEY = pytest.StashKey[str]()
#: inherited ``AIRFLOW__*`` settings the throwaway Airflow keeps: none of them can point outside it
_KEPT_SETTINGS = frozenset({"AIRFLOW__LOGGING__LOGGING_LEVEL", "AIRFLOW__CORE__UNIT_TEST_MODE"})
_EMULATOR_OPTIONS = "customers, seed, latency_ms, products, invoices_per_customer, token, workspace, webhook, conn_id"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _DAGS_FOLDER_OPTION,
        "your DAGs folder (relative to the ini file): the run gets a throwaway AIRFLOW_HOME and SQLite "
        "database, set before Airflow is imported, for the piriod_airflow fixture",
        default="",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Before any conftest or test module can import Airflow: point it at a throwaway home, if asked to."""
    folder = early_config.getini(_DAGS_FOLDER_OPTION)
    if not folder:
        return
    base = early_config.inipath.parent if early_config.inipath else early_config.rootpath
    dropped = _drop_inherited_airflow_settings()
    home = _use_throwaway_airflow_home((base / folder).resolve())
    early_config.stash[_HOME_KEY] = home
    if dropped:
        early_config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"{_DAGS_FOLDER_OPTION}: the throwaway Airflow ignores these inherited settings, so DAG tests "
                f"never reach a real secrets backend, database or connection: {', '.join(dropped)}"
            ),
            stacklevel=2,
        )


def _use_throwaway_airflow_home(dags_folder: Path) -> str:
    """Set Airflow's home, database, dags folder and examples for this process; returns the new home."""
    from airflow_provider_piriod.testing.dag_runs import HOME_VARIABLE

    if "airflow" in sys.modules:
        warnings.warn(
            f"{_DAGS_FOLDER_OPTION}: Airflow was imported before pytest loaded this plugin, so it keeps "
            "the AIRFLOW_HOME it found; the piriod_airflow fixture will refuse to reset that database",
            stacklevel=1,
        )
    home = tempfile.mkdtemp(prefix="piriod-airflow-home-")
    # pytest_unconfigure never runs when pytest stops early (usage error, broken conftest)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            # never the user's airflow.cfg: its secrets backend would serve real connections to the DAG
            "AIRFLOW_CONFIG": f"{home}/airflow.cfg",
            HOME_VARIABLE: home,
            # explicit, so a database configured in the environment is never the one a test resets
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    os.environ.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)
    return home


def _drop_inherited_airflow_settings() -> list[str]:
    """Remove the environment's Airflow settings and connections, so no real secrets backend or host is used."""
    dropped = sorted(
        name
        for name in os.environ
        if (name.startswith("AIRFLOW__") and name not in _KEPT_SETTINGS) or name.startswith("AIRFLOW_CONN_")
    )
    for name in dropped:
        del os.environ[name]
    return dropped


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME_KEY, None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"piriod_emulator(**options): options for the piriod_emulator fixture ({_EMULATOR_OPTIONS})",
    )


@pytest.fixture
def piriod_emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """
    A running Piriod emulator (a :class:`~airflow_provider_piriod.testing.PiriodEmulator`), with
    ``AIRFLOW_CONN_PIRIOD_DEFAULT`` pointing at it for the test.

    It serves customers, contacts, invoices, payments, subscriptions, creditnotes, plans, products and
    payment-receipts. Its methods drive any of them: ``records(resource)``, ``record(resource, id)``,
    ``create(resource, fields, after_seconds=..., after_requests=...)`` and ``update(resource, id, fields,
    after_seconds=..., after_requests=...)``, besides the customer helpers, faults and the request log.
    The API takes writes too; ``objects(resource)`` gives back everything stored (writes included) and
    ``count_requests("POST", "/invoices/")`` counts the requests of one method and path.
    Options through ``@pytest.mark.piriod_emulator(customers=..., seed=..., latency_ms=..., products=...,
    invoices_per_customer=..., webhook=..., conn_id=...)``; ``conn_id`` names the connection to set (for DAGs
    that use another id than ``piriod_default``); ``webhook={"url": ..., "secret": ...}`` registers a webhook
    at start (as ``set_webhook``, which also works later: ``webhook_deliveries()`` lists every attempt).
    """
    from airflow_provider_piriod.testing.server import PiriodEmulator

    marker = request.node.get_closest_marker("piriod_emulator")
    options = dict(marker.kwargs) if marker else {}
    conn_id = options.pop("conn_id", "piriod_default")
    with PiriodEmulator(**options) as emulator:
        for name, value in emulator.connection_env(conn_id).items():
            monkeypatch.setenv(name, value)
        yield emulator


@pytest.fixture(scope="session")
def _piriod_airflow_session():
    """The throwaway Airflow of this run, its database created once (on first use)."""
    from airflow_provider_piriod.testing.dag_runs import AirflowForTests, home_from_environment

    home = home_from_environment()
    if home is None:
        pytest.fail(
            f"piriod_airflow needs the ini option {_DAGS_FOLDER_OPTION} (e.g. `{_DAGS_FOLDER_OPTION} = dags` under "
            "[pytest] or [tool.pytest.ini_options]): Airflow reads its home, database and dags folder once, "
            "when first imported, so the plugin must set them before any test module is imported",
            pytrace=False,
        )
    airflow = AirflowForTests(home, Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]))
    airflow.reset_database()
    return airflow


@pytest.fixture
def piriod_airflow(_piriod_airflow_session):
    """
    Run your DAGs under ``dag.test()`` in a throwaway Airflow home and SQLite database (Airflow 2.11 and 3).

    ``piriod_airflow.test_dag(dag_id, conf=..., logical_date=...)`` parses the DAG from the folder set
    by the ``piriod_dags_folder`` ini option, runs it, and returns a
    :class:`~airflow_provider_piriod.testing.dag_runs.DagTestResult` (``state``, ``task_states``,
    ``xcom(task_id)``, ``mapped_xcoms(task_id)``). Use it with ``piriod_emulator`` so the DAG's
    Piriod tasks talk to the emulator.
    """
    return _piriod_airflow_session
