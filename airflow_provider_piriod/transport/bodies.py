"""Read a response body without trusting the server: a deadline, a size cap and bounded decompression.

Both transports read the raw bytes themselves and decode ``Content-Encoding`` here, so a few kilobytes
of gzip never expand into gigabytes before anything is counted, and both clients fail the same way.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import PiriodResponseError
from airflow_provider_piriod.protocol import PiriodDecodeError
from airflow_provider_piriod.redaction import redact
from airflow_provider_piriod.transport.calls import deadline_error

#: the encodings the transports ask for (``Accept-Encoding``) and can decode
ACCEPT_ENCODING = "gzip, deflate"
#: largest piece of decoded output produced at once, so the size cap is checked as output grows
DECODE_STEP = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


def repeated_length(declared: str | None) -> int | None:
    """A length, possibly repeated (``40, 40``, which RFC 9112 6.3 lets a client read as 40); else None."""
    values = {value.strip() for value in (declared or "").split(",")}
    value = values.pop() if len(values) == 1 else ""
    return int(value) if value.isascii() and value.isdigit() else None


class BodyBudget:
    """A total deadline and a size cap, checked on the raw bytes and on every decoded piece."""

    def __init__(
        self, *, limit: int, timeout: float, deadline: float, method: str, path: str, status: int, secrets: Any = ()
    ) -> None:
        self.limit, self.timeout, self.deadline = limit, timeout, deadline
        self.method, self.path, self.status = method, path, status
        self.secrets = secrets  # a header value quoted in an error is cut short only after they are cut out
        self.raw = self.size = 0

    def check_declared(self, content_length: str | None) -> None:
        """Refuse a body whose declared length is too large, or not a length at all (RFC 9112 6.3)."""
        if content_length is None:
            return
        length = repeated_length(content_length)
        if length is None:
            raise self.error(
                f"the answer's Content-Length is not a length ({redact(content_length, self.secrets)[:20]!r})"
            )
        if length > self.limit:
            raise self._too_large(f"answer of {length} bytes")

    def add_raw(self, count: int) -> None:
        self.raw += count
        if self.raw > self.limit:
            raise self._too_large("answer")
        self.check_time()

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise self._too_large("decoded answer")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise deadline_error(self.method, self.path, self.timeout, self.status)

    def error(self, what: str, kind: type[PiriodResponseError] = PiriodResponseError) -> PiriodResponseError:
        return kind(
            f"Piriod {self.method} {self.path}: {what}", status_code=self.status, method=self.method, path=self.path
        )

    def _too_large(self, what: str) -> PiriodResponseError:
        return self.error(f"{what} exceeds the {self.limit}-byte limit (connection extra max_response_bytes)")


def open_body(
    settings: PiriodSettings, headers: Mapping[str, str], *, status: int, method: str, path: str, deadline: float
) -> BodyDecoder:
    """The decoder for one answer's body: its budget from the connection, the declared length checked."""
    budget = BodyBudget(
        limit=settings.max_response_bytes,
        timeout=settings.timeout,
        deadline=deadline,
        method=method,
        path=path,
        status=status,
        secrets=settings.token,
    )
    budget.check_declared(headers.get("Content-Length"))  # either client's case-insensitive mapping
    return BodyDecoder(headers.get("Content-Encoding"), budget)


class BodyDecoder:
    """Undo ``Content-Encoding`` (identity, gzip or deflate) one bounded step at a time."""

    def __init__(self, content_encoding: str | None, budget: BodyBudget) -> None:
        self.budget = budget
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1:
            raise budget.error(f"stacked Content-Encoding {', '.join(codings)!r} is refused")
        self._coding = codings[0] if codings else None
        if self._coding not in (None, "gzip", "x-gzip", "deflate"):
            coding = redact(self._coding, budget.secrets)[:40]
            raise budget.error(f"Content-Encoding {coding!r} is not supported (asked for {ACCEPT_ENCODING})")
        self._inflater: zlib._Decompress | None = None
        self._parts: list[bytes] = []

    def feed(self, raw: bytes) -> None:
        """Count ``raw`` and keep what it decodes to; raises once the deadline or the size cap is passed."""
        self.budget.add_raw(len(raw))
        for piece in (raw,) if self._coding is None else self._inflate(raw):
            self.budget.add(piece)
            self._parts.append(piece)

    def finish(self) -> bytes:
        """The whole decoded body; a compressed stream cut short is a (retried) decode error."""
        if self._coding is not None and (self._inflater is None or not self._inflater.eof) and self.budget.raw:
            raise self.budget.error(f"the {self._coding} body ends before its end marker", PiriodDecodeError)
        return b"".join(self._parts)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while True:
            if self._inflater is None:
                self._inflater = zlib.decompressobj(self._window_bits(data))
            inflater = self._inflater
            try:
                piece = inflater.decompress(data, DECODE_STEP)
            except zlib.error:
                raise self.budget.error(f"the {self._coding} body is corrupt") from None
            data = inflater.unconsumed_tail
            if piece:
                yield piece
            if inflater.eof:
                data = inflater.unused_data + data
                if not data:
                    return
                if self._coding == "deflate" or not _GZIP_MAGIC.startswith(data[:2]):
                    raise self.budget.error(f"data follows the end of the {self._coding} body")
                self._inflater = None  # another gzip member
                continue
            if not data and len(piece) < DECODE_STEP:
                return

    def _window_bits(self, data: bytes) -> int:
        if self._coding != "deflate":
            return 16 + zlib.MAX_WBITS
        # "deflate" is meant to be zlib-wrapped; some servers send raw deflate
        zlib_wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS
