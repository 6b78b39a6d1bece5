"""A local Piriod API for the demo, tests, benchmarks and your own DAG tests.

``from airflow_provider_piriod.testing import PiriodEmulator``. Kept import-light: the pytest
plugin imports this package in every pytest run of every user, so nothing heavy loads until a
name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_piriod.testing.server import PiriodEmulator

__all__ = ["PiriodEmulator"]


def __getattr__(name: str) -> Any:
    if name == "PiriodEmulator":
        from airflow_provider_piriod.testing.server import PiriodEmulator

        return PiriodEmulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
