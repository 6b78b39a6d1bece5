"""JSON text with exact money: Decimals are written as bare numbers carrying every digit.

Records are kept with ``Decimal`` money so that a total such as ``123456789012345.67`` reaches the
wire exactly (a float holds about 15 significant digits). Records without Decimals take the plain
``json.dumps`` path, so the customers listing costs what it always did.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    """JSON text in ``json.dumps``'s default layout; Decimals become bare JSON numbers."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return _exact(value)


def dumps_bytes(value: Any) -> bytes:
    return dumps(value).encode()


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping numbers with a fraction or exponent as Decimal (never through float)."""
    return json.loads(text, parse_float=Decimal)


def decimal_text(value: Decimal) -> str:
    """The JSON number for ``value`` with the same digits; NaN and infinities have no JSON form."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as a JSON number")
    return str(value)


def _exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        items = (f"{_key(key)}: {_exact(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_exact(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _key(key: Any) -> str:
    """Object keys the way ``json.dumps`` writes them (numbers, booleans and None become strings)."""
    text = ("true" if key else "false") if isinstance(key, bool) else "null" if key is None else str(key)
    return json.dumps(text, ensure_ascii=False)
