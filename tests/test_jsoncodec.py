"""The JSON codec keeps money exact, refuses what is not JSON with ValueError, and always writes valid UTF-8.

``loads`` has two decoders (msgspec when installed, :mod:`json` otherwise and for whatever msgspec refuses); the
``each_decoder`` fixture runs a test with each, and the differential tests check they give the same answers.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.testing.data import make_customers


def tagged(value):
    """The value with each number tagged by its digits, so equality also compares what would be written.

    A float is tagged by its repr; an int and a Decimal by their exact digits (an integral Decimal such as
    ``Decimal("1.9115886258278636E+16")`` is written as a plain integer literal and reads back as that int).
    """
    if isinstance(value, dict):
        return {key: tagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [tagged(item) for item in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    return ("float", repr(value)) if isinstance(value, float) else ("exact", str(value))


def exactly(value):
    """``tagged(value)`` with each dict as its list of items, so key order counts too."""
    if isinstance(value, dict):
        return [(key, exactly(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [exactly(item) for item in value]
    return tagged(value)


needs_msgspec = pytest.mark.skipif(importlib.util.find_spec("msgspec") is None, reason="msgspec is not installed")


@pytest.fixture(params=["msgspec", "json"])
def each_decoder(request, monkeypatch):
    """Run the test with msgspec decoding (the default when installed) and with the json path alone."""
    if request.param == "json":
        monkeypatch.setattr(jsoncodec, "_fast_decoder", lambda: None)
    elif importlib.util.find_spec("msgspec") is None:
        pytest.skip("msgspec is not installed")
    return request.param


# ---- loads: numbers ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("each_decoder")
@pytest.mark.parametrize(
    "literal, expected",
    [
        ("123456789012345.67", Decimal("123456789012345.67")),  # 17 digits: a float would print ...345.67 wrong
        ("0.30000000000000004", Decimal("0.30000000000000004")),
        ("1234567890.123456", Decimal("1234567890.123456")),  # 16 digits
        ("1.500000000000000000", Decimal("1.500000000000000000")),  # trailing zeros are digits too
        ("-98765432109876543.21", Decimal("-98765432109876543.21")),
        ("1e400", Decimal("1E+400")),  # beyond the float range
        ("1e-400", Decimal("1E-400")),  # would underflow to 0.0
        ("1.5e-310", Decimal("1.5E-310")),  # a subnormal float holds fewer digits
    ],
)
def test_numbers_a_float_cannot_show_become_exact_decimals(literal, expected):
    value = jsoncodec.loads(literal)
    assert type(value) is Decimal and str(value) == str(expected)


@pytest.mark.usefixtures("each_decoder")
@pytest.mark.parametrize(
    "literal, expected",
    [
        ("110.00", 110.0),
        ("0.1", 0.1),
        ("-2.5", -2.5),
        ("123456789012.345", 123456789012.345),  # 15 digits
        ("1e5", 100000.0),
        ("2.5E-3", 0.0025),
        ("0.000000000000000000012", 1.2e-20),
        ("0.0", 0.0),
        ("0e999", 0.0),
    ],
)
def test_numbers_a_float_shows_exactly_stay_floats(literal, expected):
    value = jsoncodec.loads(literal)
    assert type(value) is float and value == expected
    assert Decimal(repr(value)) == Decimal(literal)


@pytest.mark.usefixtures("each_decoder")
def test_negative_zero_and_integers_are_untouched():
    assert repr(jsoncodec.loads("-0.0")) == "-0.0"
    value = jsoncodec.loads("[0, -7, 12345678901234567890123]")
    assert value == [0, -7, 12345678901234567890123] and all(type(v) is int for v in value)


@settings(max_examples=800, deadline=None)
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True))
def test_every_number_literal_keeps_its_value_for_display(literal):
    value = jsoncodec.loads(literal)
    assert exactly(value) == exactly(jsoncodec._json_loads(literal))  # whichever decoder read it
    if isinstance(value, float):
        assert Decimal(repr(value)) == Decimal(literal)  # what a float prints is the literal's value
    elif isinstance(value, Decimal):
        assert value.as_tuple() == Decimal(literal).as_tuple()  # the same digits and exponent
    else:
        assert type(value) is int and value == int(literal)


# ---- loads: what is refused -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("each_decoder")
@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"total": -Infinity}', "[1, NaN]"])
def test_non_standard_constants_are_refused(text):
    with pytest.raises(ValueError, match="constant"):
        jsoncodec.loads(text)
    with pytest.raises(ValueError, match="constant"):
        jsoncodec.loads(text.encode())


@pytest.mark.usefixtures("each_decoder")
def test_deep_nesting_is_a_value_error_not_a_recursion_error():
    depth = 100_000  # beyond what any supported Python's decoder nests
    with pytest.raises(ValueError, match="nested too deeply"):
        jsoncodec.loads("[" * depth + "]" * depth)
    with pytest.raises(ValueError, match="nested too deeply"):
        jsoncodec.loads(b'{"a":' * depth + b"1" + b"}" * depth)


@pytest.mark.usefixtures("each_decoder")
def test_nesting_past_the_recursion_limit_is_parsed_or_refused_never_a_recursion_error():
    """Python 3.13's decoder nests as deep as its C stack allows, 3.11's stops at the recursion limit: either
    answer is fine, a RecursionError is not (and XCom refuses what it cannot carry: see test_xcom)."""
    depth = sys.getrecursionlimit() + 10
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        try:
            jsoncodec.loads(text)
        except ValueError as exc:
            assert "nested too deeply" in str(exc)


@pytest.mark.usefixtures("each_decoder")
@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b'{"name": "caf\xe9"}',  # Latin-1, not UTF-8
        b'"\xed\xa0\x80"',  # a surrogate encoded as bytes is not UTF-8
        b"",
        b"{",
        b'{"a": 1,}',
        b"[1] [2]",
        "\ufeff[1]",  # a byte order mark inside text is not JSON
        b"1e99999999999999999999999999",  # too large even for Decimal
    ],
)
def test_malformed_input_is_a_value_error(data):
    with pytest.raises(ValueError):
        jsoncodec.loads(data)


@pytest.mark.usefixtures("each_decoder")
@pytest.mark.parametrize(
    "data, error",
    [
        (b'{"total": 1', json.JSONDecodeError),  # truncated: a caller retries these two
        (b"<html>Bad gateway</html>", json.JSONDecodeError),
        (b'{"name": "caf\xe9"}', UnicodeDecodeError),
        (b"[NaN]", ValueError),  # not JSON by the standard, and the same again on a retry
        (b"[" * 100_000 + b"]" * 100_000, ValueError),
        (b"1" * 5000, ValueError),  # more digits than Python converts to an int
    ],
)
def test_each_kind_of_failure_raises_the_same_error_class(data, error):
    with pytest.raises(ValueError) as raised:
        jsoncodec.loads(data)
    assert type(raised.value) is error


@pytest.mark.usefixtures("each_decoder")
def test_lone_surrogate_escapes_duplicate_keys_and_big_integers_read_as_json_reads_them():
    text = r'{"b": "\udc00 x \ud83d\ude00", "a": 1, "b": [12345678901234567890123, -9223372036854775809]}'
    value = jsoncodec.loads(text.encode())
    assert exactly(value) == exactly(json.loads(text))  # "b" keeps its first place and its last value
    assert value["b"] == [12345678901234567890123, -9223372036854775809]


@pytest.mark.usefixtures("each_decoder")
def test_bytes_are_utf8_and_a_leading_byte_order_mark_is_ignored():
    text = '{"name": "Ñuñoa", "total": 123456789012345.67}'
    expected = {"name": "Ñuñoa", "total": Decimal("123456789012345.67")}
    for data in (
        text,
        text.encode(),
        b"\xef\xbb\xbf" + text.encode(),
        bytearray(text.encode()),
        memoryview(text.encode()),
    ):
        assert jsoncodec.loads(data) == expected


@pytest.mark.usefixtures("each_decoder")
def test_a_customer_page_decodes_like_json_loads():
    page = json.dumps({"count": 100, "next": None, "previous": None, "results": make_customers(100, seed=3)})
    assert jsoncodec.loads(page.encode()) == json.loads(page)


# ---- loads: msgspec and the json path give the same answers ----------------------------------------------------


@needs_msgspec
def test_msgspec_decodes_pages_itself_when_installed():
    page = jsoncodec.dumps(
        {"count": 1, "results": make_customers(20, seed=5), "total": Decimal("123456789012345.67")}
    ).encode()
    value = jsoncodec._fast_decoder().decode(page)  # no fallback to the json path needed
    assert value["total"] == Decimal("123456789012345.67")
    assert exactly(value) == exactly(jsoncodec._json_loads(page))


def test_without_msgspec_the_json_path_decodes_alone():
    code = textwrap.dedent("""
        import sys
        sys.modules["msgspec"] = None  # as if it were not installed
        from decimal import Decimal
        from airflow_provider_piriod import jsoncodec
        assert jsoncodec._fast_decoder() is None
        assert jsoncodec.loads(b'{"total": 123456789012345.67}') == {"total": Decimal("123456789012345.67")}
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def decoded_or_error(decode, data):
    """What ``decode`` makes of ``data``: its exact value, or the error's class and message."""
    try:
        return exactly(decode(data))
    except ValueError as exc:
        return type(exc), str(exc)


_JSON_BITS = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b'"',
        b"\\",
        b"\\u",
        b"d800",
        b"e",
        b"E",
        b"-",
        b".",
        b"0",
        b"9",
        b" ",
        b"\t",
        b"NaN",
        b"Infinity",
        b"null",
        b"\xff",
        b"\xc3",
        b"\x00",
        b"\xef\xbb\xbf",
        b"1e400",
        b"123456789012345.67",
    ]
)


@st.composite
def json_texts_and_near_misses(draw):
    """JSON text of random values in random layouts, sometimes with a few pieces inserted or removed."""
    value = draw(_values)
    layout = draw(st.sampled_from([{}, {"ensure_ascii": False}, {"indent": 2}, {"separators": (",", ":")}]))
    data = (jsoncodec.dumps(value) if draw(st.booleans()) else json.dumps(value, default=str, **layout)).encode(
        "utf-8", "surrogatepass"
    )
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(_JSON_BITS) + data[at + draw(st.integers(0, 2)) :]
    return data


@needs_msgspec
@settings(max_examples=600, deadline=None)
@given(json_texts_and_near_misses())
def test_msgspec_and_the_json_path_agree_on_values_and_errors(data):
    assert decoded_or_error(jsoncodec.loads, data) == decoded_or_error(jsoncodec._json_loads, data)


# ---- dumps ------------------------------------------------------------------------------------------------------


def test_decimals_are_written_as_bare_numbers_with_their_digits():
    value = {
        "total": Decimal("123456789012345.67"),
        "tax": Decimal("19.00"),
        "tiny": Decimal("1E-7"),
        "items": [Decimal("-0"), 1.5, 3, None, True, "x"],
    }
    text = jsoncodec.dumps(value)
    assert text == '{"total":123456789012345.67,"tax":19.00,"tiny":1E-7,"items":[-0,1.5,3,null,true,"x"]}'
    expected = {
        "total": Decimal("123456789012345.67"),
        "tax": 19.0,
        "tiny": 1e-7,
        "items": [0, 1.5, 3, None, True, "x"],
    }
    assert tagged(jsoncodec.loads(text)) == tagged(expected)  # short literals come back as floats, -0 as an int


def test_plain_data_is_compact_json_with_utf8_text():
    value = {"name": "Comercial Cóndor SpA", "amounts": [1, 2.5], "ok": False}
    assert jsoncodec.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_a_lone_surrogate_is_escaped_so_the_text_stays_valid_utf8():
    value = jsoncodec.loads(r'{"name": "\ud800 Ñuñoa", "total": 123456789012345.67}')
    text = jsoncodec.dumps(value)
    text.encode("utf-8")  # does not raise
    assert "\\ud800" in text and jsoncodec.loads(text) == value
    line = jsoncodec.dumps_line(value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert jsoncodec.loads(line) == value


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        [float("inf")],
        {"a": -float("inf")},
        Decimal("NaN"),
        [Decimal("Infinity")],
        {"total": Decimal("-Infinity"), "x": Decimal(1)},
        Decimal("sNaN"),
    ],
)
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ValueError):
        jsoncodec.dumps(value)
    with pytest.raises(ValueError):
        jsoncodec.dumps_line(value)


def test_values_json_cannot_hold_are_a_type_error():
    with pytest.raises(TypeError):
        jsoncodec.dumps({"when": object()})
    with pytest.raises(TypeError):
        jsoncodec.dumps({"total": Decimal("1.5"), "when": object()})


def test_dumps_line_is_one_utf8_line():
    line = jsoncodec.dumps_line({"name": "Ñuñoa", "total": Decimal("10.50")})
    assert line == '{"name":"Ñuñoa","total":10.50}\n'.encode()


# ---- the round trip ---------------------------------------------------------------------------------------------

_texts = st.text(st.characters(exclude_categories=()), max_size=12)  # lone surrogates included
_numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.from_regex(r"-?[1-9][0-9]{14,24}\.[0-9]{1,3}", fullmatch=True).map(Decimal),
)
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), _texts, _numbers),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_texts, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_decoding_what_was_encoded_gives_the_same_values_and_digits(value):
    text = jsoncodec.dumps(value)  # JSON text T with any mix of numbers
    text.encode("utf-8")
    decoded = jsoncodec.loads(text)
    assert tagged(jsoncodec.loads(jsoncodec.dumps(decoded))) == tagged(decoded)
    assert jsoncodec.loads(jsoncodec.dumps_line(decoded)) == decoded


@settings(max_examples=200, deadline=None)
@given(_values)
def test_plain_json_text_round_trips(value):
    text = json.dumps(value, default=str)  # the ordinary json module's text, Decimals as strings
    decoded = jsoncodec.loads(text)
    assert tagged(jsoncodec.loads(jsoncodec.dumps(decoded))) == tagged(decoded)
