"""Bodies decoded here, within the size cap and the deadline, one bounded step at a time."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest

from airflow_provider_piriod.exceptions import PiriodNetworkError, PiriodResponseError
from airflow_provider_piriod.protocol import PiriodDecodeError
from airflow_provider_piriod.transport.attempt import BodyBudget, BodyDecoder


def budget(limit=1 << 20, timeout=5.0):
    return BodyBudget(
        limit=limit, timeout=timeout, deadline=time.monotonic() + timeout, method="GET", path="/invoices/", status=200
    )


def decode(encoding, chunks, limit=1 << 20):
    decoder = BodyDecoder(encoding, budget(limit))
    for chunk in chunks:
        decoder.feed(chunk)
    return decoder.finish()


def test_identity_gzip_deflate_and_raw_deflate():
    body = b'{"count": 0, "results": []}' * 50
    assert decode(None, [body]) == body
    assert decode("identity", [body]) == body
    assert decode("gzip", [gzip.compress(body)]) == body
    assert decode("deflate", [zlib.compress(body)]) == body
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode("deflate", [raw.compress(body) + raw.flush()]) == body


def test_gzip_trickled_byte_by_byte_and_in_several_members():
    body = b"x" * 1000
    packed = gzip.compress(body)
    assert decode("gzip", [packed[i : i + 1] for i in range(len(packed))]) == body
    assert decode("gzip", [packed + packed]) == body + body


def test_a_bomb_is_stopped_at_the_cap_not_after_decoding_it():
    bomb = gzip.compress(b"\0" * (256 << 20))  # 256 MiB of zeros in about 250 KiB
    decoder = BodyDecoder("gzip", budget(limit=1 << 20))
    with pytest.raises(PiriodResponseError, match="decoded answer exceeds the 1048576-byte limit"):
        decoder.feed(bomb)
    assert sum(map(len, decoder._parts)) <= (1 << 20) + 64 * 1024


def test_stacked_and_unknown_encodings_are_refused():
    with pytest.raises(PiriodResponseError, match="stacked Content-Encoding"):
        BodyDecoder("gzip, gzip", budget())
    with pytest.raises(PiriodResponseError, match="not supported"):
        BodyDecoder("br", budget())


def test_garbage_after_the_member_and_a_corrupt_stream_are_errors():
    with pytest.raises(PiriodResponseError, match="data follows the end"):
        decode("gzip", [gzip.compress(b"{}") + b"garbage"])
    with pytest.raises(PiriodResponseError, match="corrupt"):
        decode("gzip", [b"\x1f\x8b\x08\x00" + b"\xff" * 40])


def test_a_stream_cut_short_is_a_retried_decode_error():
    with pytest.raises(PiriodDecodeError, match="ends before its end marker"):
        decode("gzip", [gzip.compress(b"{}" * 100)[:-10]])


def test_bytes_that_decode_to_nothing_still_count_against_the_cap():
    empty_blocks = b"\x00\x00\x00\xff\xff" * 1000  # stored deflate blocks of length 0
    decoder = BodyDecoder("deflate", budget(limit=2048))
    with pytest.raises(PiriodResponseError, match="answer exceeds"):
        decoder.feed(empty_blocks)


def test_the_deadline_is_checked_as_bytes_arrive():
    decoder = BodyDecoder(
        "gzip",
        BodyBudget(limit=1 << 20, timeout=0.01, deadline=time.monotonic() - 1, method="GET", path="/x/", status=200),
    )
    with pytest.raises(PiriodNetworkError, match="deadline"):
        decoder.feed(b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\x03" + b"a" * 10)  # an endless file name field
