"""Piriod JSON on its way through XCom and trigger events, with money kept exact.

The hooks decode an amount of more than 15 significant digits as a ``Decimal`` (a float cannot
hold it). Airflow's XCom serialiser (``serde``, the same on Airflow 2.11 and 3) stores a
``Decimal`` with digits after the point as a ``float`` and reads it back as ``Decimal(str(float))``:
exact only when the float's shortest form has the same digits, as it does for
``123456789012345.67`` but not for ``1234567890123.4567``. :func:`for_xcom` keeps every Decimal
that makes the trip unchanged and replaces any other by its exact digits as a string, so no digit
is ever lost without a word. Trigger events must be plain JSON, so a value holding a Decimal
travels there as JSON text (:func:`success_event`, :func:`event_value`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.exceptions import PiriodResponseError

log = logging.getLogger(__name__)


def carried_exactly(number: Decimal) -> bool:
    """Whether XCom gives ``number`` back equal: an integral Decimal goes as an int, any other as a float."""
    if not number.is_finite():
        return False
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return True
    return Decimal(repr(float(number))) == number


def for_xcom(value: Any, *, where: str = "value") -> Any:
    """``value`` with every Decimal XCom would change replaced by its exact digits (a string), with a warning."""
    try:
        return _for_xcom(value, where)
    except RecursionError:
        raise PiriodResponseError(f"{where} is nested more deeply than XCom can carry") from None


def _for_xcom(value: Any, where: str) -> Any:
    if isinstance(value, Decimal):
        if carried_exactly(value):
            return value
        log.warning(
            "%s = %s has more digits than Airflow's XCom carries for a Decimal (it goes through a float); "
            "pushing its exact digits as a string instead. output_path (NDJSON) keeps it as a number.",
            where,
            value,
        )
        return str(value)
    if isinstance(value, Mapping):
        return {key: _for_xcom(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_for_xcom(item, f"{where}.{index}") for index, item in enumerate(value)]
    return value


def has_decimal(value: Any) -> bool:
    """True when ``value`` holds a Decimal anywhere (so plain JSON cannot carry it)."""
    if isinstance(value, Decimal):
        return True
    if isinstance(value, Mapping):
        return any(has_decimal(item) for item in value.values())
    if isinstance(value, list):
        return any(has_decimal(item) for item in value)
    return False


def success_event(value: Any, message: str) -> dict[str, Any]:
    """A trigger's success event: ``value`` as plain JSON, or as exact JSON text (``value_json``) with a Decimal."""
    if has_decimal(value):
        return {"status": "success", "value_json": jsoncodec.dumps(value), "message": message}
    return {"status": "success", "value": value, "message": message}


def event_value(event: Mapping[str, Any]) -> Any:
    """The value a success event carries, Decimals restored exactly (events from older triggers hold ``value``)."""
    if "value_json" in event:
        return jsoncodec.loads(event["value_json"])
    return event.get("value")
