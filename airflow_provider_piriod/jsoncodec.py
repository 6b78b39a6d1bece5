"""JSON that keeps money exact: decimal literals that a float cannot hold come back as Decimal.

``loads`` reads a number with a fraction or exponent as a ``float`` when the float shows the same value
(at most 15 significant digits, inside the normal float range) and as a ``Decimal`` built from the literal
text otherwise, so a total such as ``123456789012345.67`` keeps every digit. ``dumps`` writes those Decimals
back as bare JSON numbers with the same digits. Every decoding or encoding failure is a ``ValueError``
(``json.JSONDecodeError`` and ``UnicodeDecodeError`` are ValueErrors too), so a caller wraps it in one place.

Decoding goes through msgspec when it is installed (about twice as fast as :mod:`json` on Piriod's pages; its
float hook sees each literal's text, so the same rule keeps money exact). Whatever msgspec refuses is decoded again
by the :mod:`json` path, which either accepts it (JSON allows lone surrogate escapes; msgspec does not) or raises
the error this module always raised, so results and errors do not depend on which decoder is installed.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from decimal import Decimal, InvalidOperation
from json.encoder import _make_iterencode, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

__all__ = ["dumps", "dumps_line", "loads"]

# A decimal literal with at most this many significant digits survives the trip through a double
# (DBL_DIG) as long as the value is a normal float: subnormals hold fewer digits.
FLOAT_SAFE_DIGITS = sys.float_info.dig
_SMALLEST_NORMAL = sys.float_info.min
_LARGEST = sys.float_info.max
# With a "." or an exponent marker among its characters, a literal this long cannot hold more than 15 digits.
_SHORT_LITERAL = FLOAT_SAFE_DIGITS + 1
_BOM = b"\xef\xbb\xbf"


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON text (bytes must be UTF-8) with exact numbers; any malformed input raises ValueError."""
    decoder = _fast_decoder()
    if decoder is not None:
        try:
            return decoder.decode(_without_bom(data))
        except (ValueError, RecursionError):  # msgspec's errors are ValueErrors; the json path has the last word
            pass
    return _json_loads(data)


def _json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The reference decoder (:mod:`json` with exact numbers): it decides everything msgspec refuses."""
    text = _utf8_text(data) if not isinstance(data, str) else data
    try:
        return json.loads(text, parse_float=_parse_number, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _without_bom(data: bytes | bytearray | memoryview | str) -> bytes | bytearray | memoryview | str:
    """Bytes without a leading UTF-8 byte order mark (ignored, as the json path does); text as it is."""
    if not isinstance(data, str) and data[:3] == _BOM:
        return data[3:]
    return data


def dumps(value: Any) -> str:
    """Compact JSON text for ``value`` with Decimals as bare numbers; the text always encodes to UTF-8.

    NaN, infinities and circular references raise ValueError; a value JSON has no form for raises TypeError.
    """
    text = _dumps_text(value, _UTF8)
    if text.isascii() or _is_encodable(text):
        return text
    return _dumps_text(value, _ASCII)


def dumps_line(value: Any) -> bytes:
    """One NDJSON line: ``dumps(value)`` in UTF-8 followed by a newline."""
    text = _dumps_text(value, _UTF8) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a string: escape it instead
        return (_dumps_text(value, _ASCII) + "\n").encode("utf-8")


def _utf8_text(data: bytes | bytearray | memoryview) -> str:
    """Strict UTF-8 (as RFC 8259 requires), ignoring a leading byte order mark like ``json.loads`` does."""
    text = str(data, "utf-8")
    return text[1:] if text.startswith("\ufeff") else text


def _parse_number(literal: str) -> float | Decimal:
    """A float when it shows exactly the literal's value, else the literal as an exact Decimal."""
    if len(literal) <= _SHORT_LITERAL:
        value = float(literal)
        # a zero without an exponent ("0.00", common in money) is exact; with one it may be an underflow
        if _SMALLEST_NORMAL <= abs(value) <= _LARGEST or (not value and "e" not in literal and "E" not in literal):
            return value
    return _parse_long_number(literal)


def _parse_long_number(literal: str) -> float | Decimal:
    """The slow path: count the significant digits and check the float range."""
    mantissa = literal.lower().partition("e")[0]
    digits = mantissa.replace("-", "").replace(".", "").lstrip("0")
    value = float(literal)
    if not digits:
        return value  # a zero in any spelling is exact as a float
    if len(digits) <= FLOAT_SAFE_DIGITS and _SMALLEST_NORMAL <= abs(value) <= _LARGEST:
        return value
    try:
        return Decimal(literal)
    except InvalidOperation:  # an exponent beyond what Decimal can hold
        raise ValueError(f"JSON number out of range: {literal[:40]}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON does not allow the constant {name}")


@functools.cache
def _fast_decoder() -> Any:
    """msgspec's decoder with the exact-number hook (it sees each float literal's text), or None without msgspec.

    Imported on first use, not with this module, so a DAG file importing the provider does not pay for it.
    """
    try:
        import msgspec
    except ImportError:  # a dependency, but the json path alone gives the same answers
        return None
    return msgspec.json.Decoder(float_hook=_parse_number)


class _Encoding:
    """One way to write JSON text: a fast C encoder for plain data and a Decimal-aware one for the rest."""

    def __init__(self, ensure_ascii: bool) -> None:
        self.plain = json.JSONEncoder(ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":"))
        self.escape_string = encode_basestring_ascii if ensure_ascii else encode_basestring

    def with_decimals(self, value: Any) -> str:
        """The pure-Python encoder from :mod:`json`, told to treat Decimal like float and write its digits."""
        # _make_iterencode is what json itself runs without its C accelerator; its float= parameter is the type
        # it checks numbers against, so every Decimal reaches _number_text instead of the TypeError default.
        iterencode = _make_iterencode(
            markers={},
            _default=self.plain.default,
            _encoder=self.escape_string,
            _indent=None,
            _floatstr=_number_text,
            _key_separator=":",
            _item_separator=",",
            _sort_keys=False,
            _skipkeys=False,
            _one_shot=True,
            float=(float, Decimal),
        )
        chunks = iterencode(value, 0)
        return "".join(chunks)


def _number_text(number: float | Decimal) -> str:
    """A finite float or Decimal as a JSON number; NaN and the infinities are not JSON."""
    if isinstance(number, Decimal):
        if number.is_finite():
            return str(number)
    elif math.isfinite(number):
        return float.__repr__(number)
    raise ValueError(f"JSON does not allow the number {number!r}")


_UTF8 = _Encoding(ensure_ascii=False)
_ASCII = _Encoding(ensure_ascii=True)


def _dumps_text(value: Any, encoding: _Encoding) -> str:
    """Plain ``json`` first (no Decimal inside); the Decimal-aware encoder only when that meets a type it lacks."""
    try:
        try:
            return encoding.plain.encode(value)
        except TypeError:
            return encoding.with_decimals(value)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
