"""pytest plugin (``pytest11`` entry point): the ``piriod_emulator`` fixture.

Loaded by every pytest run where this provider is installed, so it imports nothing heavy and
starts nothing until a test asks for the fixture.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def piriod_emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """
    A running Piriod emulator (a :class:`~airflow_provider_piriod.testing.PiriodEmulator`), with
    ``AIRFLOW_CONN_PIRIOD_DEFAULT`` pointing at it for the test.

    It serves customers, contacts, invoices, payments, subscriptions, creditnotes, plans, products and
    payment-receipts. Its methods drive any of them: ``records(resource)``, ``record(resource, id)``,
    ``create(resource, fields, after_seconds=..., after_requests=...)`` and ``update(resource, id, fields,
    after_seconds=..., after_requests=...)``, besides the customer helpers, faults and the request log.
    Options through ``@pytest.mark.piriod_emulator(customers=..., seed=..., latency_ms=..., products=...,
    invoices_per_customer=...)``.
    """
    from airflow_provider_piriod.testing.server import PiriodEmulator

    marker = request.node.get_closest_marker("piriod_emulator")
    options = dict(marker.kwargs) if marker else {}
    with PiriodEmulator(**options) as emulator:
        for name, value in emulator.connection_env().items():
            monkeypatch.setenv(name, value)
        yield emulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "piriod_emulator(**options): options for the piriod_emulator fixture "
        "(customers, seed, latency_ms, products, invoices_per_customer)",
    )
