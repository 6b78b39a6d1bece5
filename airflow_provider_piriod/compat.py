"""Every Airflow name the provider uses, resolved in one place, on Airflow 3 and 2.11.

Airflow 3's ``airflow.sdk`` paths come first. Airflow 2.11 names come from
``airflow.providers.common.compat.sdk`` (installed with Airflow, maintained by the Airflow
project, and mapping e.g. ``Asset`` to 2.x's ``Dataset``) or from the 2.x modules themselves.
Supporting another Airflow line is a change to this file only. Names resolve lazily (PEP 562),
so importing this module costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import (
        DAG,
        Asset,
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        Connection,
        Context,
        CronDataIntervalTimetable,
        ObjectStoragePath,
        Param,
        PokeReturnValue,
        get_current_context,
        task,
    )
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.log import amask_secret, mask_secret
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetActive, AssetEvent, AssetModel
    from airflow.plugins_manager import AirflowPlugin
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent
    from airflow.utils.session import create_session

_COMPAT = "airflow.providers.common.compat.sdk"

# name -> candidate modules, first importable wins
_LOCATIONS: dict[str, tuple[str, ...]] = {
    "BaseHook": ("airflow.sdk", _COMPAT),
    "BaseOperator": ("airflow.sdk", _COMPAT),
    "BaseSensorOperator": ("airflow.sdk", _COMPAT),
    "PokeReturnValue": ("airflow.sdk", _COMPAT),
    "Connection": ("airflow.sdk", _COMPAT),
    "Context": ("airflow.sdk", _COMPAT),
    "DAG": ("airflow.sdk", _COMPAT),
    "Param": ("airflow.sdk", _COMPAT),
    "task": ("airflow.sdk", _COMPAT),
    "get_current_context": ("airflow.sdk", "airflow.operators.python"),
    "Asset": ("airflow.sdk", _COMPAT),
    "ObjectStoragePath": ("airflow.sdk", _COMPAT),
    "CronDataIntervalTimetable": ("airflow.sdk", "airflow.timetables.interval"),
    "AirflowException": ("airflow.sdk.exceptions", _COMPAT),
    "AirflowFailException": ("airflow.sdk.exceptions", _COMPAT),
    "AirflowNotFoundException": ("airflow.sdk.exceptions", _COMPAT),
    "AirflowSensorTimeout": ("airflow.sdk.exceptions", _COMPAT),
    "AirflowSkipException": ("airflow.sdk.exceptions", _COMPAT),
    "TaskDeferred": ("airflow.sdk.exceptions", _COMPAT),
    "mask_secret": ("airflow.sdk.log", _COMPAT),
    "amask_secret": ("airflow.sdk.log",),  # Airflow 2.11: see _amask_secret below
    "conf": ("airflow.sdk.configuration", _COMPAT),
    "BaseTrigger": ("airflow.triggers.base",),
    # Airflow 2.11 has no event triggers: BaseTrigger stands in (as in the official providers), see _FALLBACKS
    "BaseEventTrigger": ("airflow.triggers.base",),
    "TriggerEvent": ("airflow.triggers.base",),
    # the API server's side (the webhook receiver, Airflow 3): plugins, the metadata database, asset events
    "AirflowPlugin": ("airflow.plugins_manager",),
    "AssetModel": ("airflow.models.asset",),
    "AssetEvent": ("airflow.models.asset",),
    "AssetActive": ("airflow.models.asset",),
    "asset_manager": ("airflow.assets.manager",),
    "create_session": ("airflow.utils.session",),
}

__all__ = sorted(_LOCATIONS)

AIRFLOW_V3 = None  # set on first use of airflow_v3()


def airflow_v3() -> bool:
    """True on Airflow 3 (the Task SDK is importable)."""
    global AIRFLOW_V3
    if AIRFLOW_V3 is None:
        AIRFLOW_V3 = importlib.util.find_spec("airflow.sdk") is not None
    return AIRFLOW_V3


async def _amask_secret(secret: Any, name: str | None = None) -> None:
    """Airflow 2.11 has no async masker; its sync one does no I/O, so calling it here is safe."""
    __getattr__("mask_secret")(secret, name)


class _Airflow3Only:
    """Stands in on Airflow 2.11 for a name only Airflow 3's API server has (the webhook receiver's): using it
    raises, saying so. Nothing on 2.11 uses these; the stand-in keeps every name of this module resolvable."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ImportError(f"{self._name} needs Airflow 3 (it belongs to the API server's webhook receiver)")

    __call__ = _refuse

    def __getattr__(self, attribute: str) -> Any:
        self._refuse()


_FALLBACKS: dict[str, Any] = {
    "amask_secret": _amask_secret,
    **{name: _Airflow3Only(name) for name in ("AssetModel", "AssetEvent", "AssetActive", "asset_manager")},
}


def _base_trigger() -> Any:
    return __getattr__("BaseTrigger")


_LAZY_FALLBACKS = {"BaseEventTrigger": _base_trigger}


def __getattr__(name: str) -> Any:
    try:
        candidates = _LOCATIONS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    for module_name in candidates:
        try:
            value = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
        globals()[name] = value  # resolve once
        return value
    if name in _LAZY_FALLBACKS:
        _FALLBACKS[name] = _LAZY_FALLBACKS[name]()
    if name in _FALLBACKS:
        globals()[name] = _FALLBACKS[name]
        return _FALLBACKS[name]
    raise ImportError(f"{name} not found in any of {', '.join(candidates)}; is apache-airflow installed?")
