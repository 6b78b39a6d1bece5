"""Answers refused where http.client would guess how they are framed: the same bytes read two ways is
how requests get smuggled onto a kept-alive connection. http.client parses; this only checks what it read."""

from __future__ import annotations

import http.client
import re
from typing import Any


# RFC 9112 4: HTTP-version SP 3DIGIT SP reason-phrase (HTAB, SP, VCHAR, obs-text); the reason may be left out
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] [0-9]{3}(?: [\t\x20-\x7e\x80-\xff]*)?\r?\n")
#: most bytes the header blocks of one answer may take, interim (1xx) answers included
MAX_HEAD_BYTES = 1 << 20
# RFC 9110 5.1: a field name is a token
_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:")
# RFC 9112 7.1: chunk-size = 1*HEXDIG, then optional extensions (their content is not looked at)
_CHUNK_SIZE_LINE = re.compile(rb"[0-9A-Fa-f]+[ \t]*(;[^\r\n]*)?\r?\n")


def repeated_length(declared: str | None) -> int | None:
    """A length, possibly repeated (``40, 40``, which RFC 9112 6.3 lets a client read as 40); else None."""
    values = {value.strip() for value in (declared or "").split(",")}
    value = values.pop() if len(values) == 1 else ""
    return int(value) if value.isascii() and value.isdigit() else None


class _HeadLines:
    """Records the lines http.client reads for a status line and header block, to check them afterwards."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lines: list[bytes] = []
        self.size = 0

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(limit)
        self.size += len(line)
        if self.size > MAX_HEAD_BYTES:  # http.client skips 100 Continue answers without end
            raise http.client.HTTPException(f"an answer whose header blocks exceed {MAX_HEAD_BYTES} bytes")
        self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:  # close() and the rest, should http.client need them meanwhile
        return getattr(self.raw, name)


class _ChunkLines(_HeadLines):
    """Refuses a chunk-size line http.client's ``int(line, 16)`` would read but a strict peer would not
    (``0x20``, ``+20``, ``2_0``, `` 20``)."""

    trailer = False  # after the last chunk come trailer fields, not sizes

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(limit)
        if not self.trailer:
            if not _CHUNK_SIZE_LINE.fullmatch(line):
                raise http.client.HTTPException("an answer with a chunk size that is not hexadecimal digits")
            self.trailer = int(line.split(b";", 1)[0], 16) == 0
        return line


def _line_problem(lines: list[bytes]) -> str | None:
    """What is wrong with the status lines and header blocks of an answer (interim ones too), if anything."""
    status_next = True  # each block starts with its status line
    field_before = False  # a folded line continues the field before it: the first line of a block cannot fold
    for raw in lines:
        line = raw.removesuffix(b"\n").removesuffix(b"\r")  # the line end only: a CR before it is a bare CR
        folded = line[:1] in (b" ", b"\t")
        if status_next:
            if not _STATUS_LINE.fullmatch(raw):  # http.client reads "+200", "2_00" or "HTTP/1.1x" as 200, HTTP/1.1
                return "an answer whose status line is not 'HTTP/1.x', a three-digit status and a reason"
            status_next = field_before = False
        elif not line:
            status_next = True  # http.client goes on to the final answer after an interim one
        elif b"\r" in line or b"\0" in line:  # RFC 9110 5.5: a bare CR could hide the next field inside this one
            return "an answer with a CR or NUL inside a header line"
        elif (folded and not field_before) or (not folded and not _FIELD_LINE.match(line)):
            return "an answer with a header line that is not 'name: value'"  # no echo: it may hold the token
        else:
            field_before = True
    return None


class CheckedResponse(http.client.HTTPResponse):
    """http.client's answer, refused where http.client would guess: a status line it reads leniently, a header
    line that is not ``name: value`` (it would end the headers there), a bare CR or NUL, a transfer coding other
    than ``chunked``, chunks beside a ``Content-Length``. ``40, 40`` frames 40 bytes; 102/103 are skipped. After
    a 101, an HTTP/1.0 answer in chunks, or a 204/304 declaring a body, the connection is not reused."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        head = _HeadLines(self.fp)
        self.fp = head
        try:
            super().begin()
            while 101 < self.status < 200:  # 102, 103: interim answers http.client only skips for 100
                self.headers = None
                super().begin()
        finally:
            self.fp = head.raw
        codings = ", ".join(self.headers.get_all("Transfer-Encoding") or [])
        lengths = ", ".join(self.headers.get_all("Content-Length") or [])
        problem = _line_problem(head.lines)
        if problem is None and codings and codings.strip().lower() != "chunked":
            problem = "an answer with a transfer coding other than chunked"
        if problem is None and codings and self.headers.get_all("Content-Length"):
            problem = "an answer framed both by chunks and by a Content-Length"  # RFC 9112 6.3: an error
        if problem is not None:
            raise http.client.HTTPException(problem)
        if self.length is None and not self.chunked and lengths and self.status >= 200:
            self.length = repeated_length(lengths)  # http.client's int() cannot read "40, 40"
        if self.chunked:
            self.fp = _ChunkLines(self.fp)
        no_body = self.status in (204, 304)
        if (
            self.status < 200
            or (codings and self.version < 11)
            or (no_body and (codings or repeated_length(lengths or "0") != 0))
        ):
            self.will_close = True  # what follows on the connection may still be this answer (RFC 9112 6.1, 6.3)
