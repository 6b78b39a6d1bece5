"""How the blocking transport's GETs reach Piriod: kept-alive ``http.client`` connections, or requests via a proxy.

A GET over ``http.client`` costs about a third of the CPU of the same GET through requests and
urllib3, which merge settings, cookies and adapters and build response objects on every request.
With 16 workers on a small machine that CPU, not the network, set the pace of a bulk pull. When the
environment names a proxy for Piriod's host, requests carries every request (CONNECT tunnels, https
and SOCKS proxies). Either way the funnel gets an :class:`Answer` and reads the raw body itself, and
every socket is watched by the attempt's deadline (:mod:`.deadline`).
"""

from __future__ import annotations

import http.client
import os
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import requote_uri

from airflow_provider_piriod.exceptions import PiriodError
from airflow_provider_piriod.protocol import MAX_WORKERS
from airflow_provider_piriod.transport.deadline import release_sockets, watch_socket


class Answer:
    """One answer on its way in: status, reason, headers (names case-insensitive, repeats joined) and raw body.

    ``read1`` returns what has arrived, ``b""`` at the end; ``close`` gives the connection back if the body was
    read to its end, else closes it.
    """

    __slots__ = ("close", "headers", "read1", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        read1: Callable[[int], bytes],
        close: Callable[[], None],
    ) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        self.read1, self.close = read1, close


class Headers(dict[str, str]):
    """An answer's headers: names lowercased, repeats joined with ``, ``, read by any spelling of a name."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class ProxiedRoute:
    """Through the session's proxy, with requests (and urllib3's pool, watched by the deadline)."""

    def __init__(self, session: requests.Session, headers: Mapping[str, str]) -> None:
        self._session = session
        self._headers: requests.structures.CaseInsensitiveDict[str | bytes] = requests.structures.CaseInsensitiveDict(
            headers
        )

    def send(self, url: str, timeout: float) -> Answer:
        session = self._session
        request = requests.PreparedRequest()
        request.method = "GET"
        request.prepare_url(url, None)
        request.headers = self._headers.copy()
        request.body = None
        request.hooks = {"response": []}
        response = session.get_adapter(url).send(
            request,
            stream=True,
            timeout=(timeout, timeout),
            verify=session.verify,
            cert=session.cert,
            proxies=session.proxies,
        )
        raw = response.raw
        if _unsure_framing(response.status_code, response.headers) and raw.connection is not None:
            raw.connection.close()
        return Answer(
            response.status_code,
            response.reason or "",
            response.headers,
            lambda size: raw.read1(size, decode_content=False),
            response.close,
        )


class DirectRoute:
    """Straight to Piriod's one host over kept-alive ``http.client`` connections, shared by a hook's workers.

    Only the configured scheme, host and port are ever connected to, whatever URL is asked for.
    """

    def __init__(self, base_url: str, verify: str | bool, headers: Mapping[str, str]) -> None:
        origin = urlsplit(base_url)
        self._scheme, self._netloc = origin.scheme, origin.netloc
        self._host = origin.hostname or ""
        self._port = origin.port or (443 if origin.scheme == "https" else 80)
        self._verify = verify
        self._headers = dict(headers)
        self._idle: list[http.client.HTTPConnection] = []
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def send(self, url: str, timeout: float) -> Answer:
        target = self._target(url)
        connection = self._take(timeout)
        try:
            watch_socket(connection.sock)  # a reused connection's socket, for this attempt
            connection.request("GET", target, headers=self._headers)
            response = connection.getresponse()
            headers: Headers = response.msg  # type: ignore[assignment]  # _LeanResponse's
            if _unsure_framing(response.status, headers):
                response.will_close = True
        except BaseException:
            connection.close()
            raise
        return _DirectAnswer(self, connection, response, headers).answer()

    def _target(self, url: str) -> str:
        """The request target (path and query) of a URL on the configured origin, quoted as requests would."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._scheme, self._netloc):
            raise PiriodError(f"Piriod GET {parts.path}: not sent, it is not on the configured origin")
        return requote_uri(f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}")

    def _take(self, timeout: float) -> http.client.HTTPConnection:
        """An idle connection the server has not closed meanwhile, or a new one (connected on first request)."""
        while True:
            with self._lock:  # held for the pop alone: a system call under it would queue every worker behind it
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            sock = connection.sock
            if sock is not None and not _readable(sock):
                if sock.gettimeout() != timeout:  # setting it is a system call, even to the same value
                    sock.settimeout(timeout)
                return connection
            connection.close()  # the server closed it, or sent something unasked
        if self._scheme == "https":
            return _WatchedTLSConnection(self._host, self._port, timeout=timeout, context=self._tls_context)
        return _WatchedConnection(self._host, self._port, timeout=timeout)

    def _give_back(self, connection: http.client.HTTPConnection, reusable: bool) -> None:
        if release_sockets(getattr(connection, "watched", [])) or not reusable:
            connection.close()  # the attempt that used it expired: its socket may already be shut down
            return
        with self._lock:
            if len(self._idle) < MAX_WORKERS:
                self._idle.append(connection)
                return
        connection.close()

    @property
    def _tls_context(self) -> ssl.SSLContext:
        """The CA bundle requests would use (the environment's, else certifi's), loaded once."""
        with self._lock:
            context = self._context
            if context is None:
                bundle = requests.certs.where() if self._verify is True else str(self._verify)
                if os.path.isdir(bundle):
                    context = ssl.create_default_context(capath=bundle)
                else:
                    context = ssl.create_default_context(cafile=bundle)
                self._context = context
            return context


class _DirectAnswer:
    """The body of one direct answer; the connection goes back to the pool the moment its body ends."""

    def __init__(
        self,
        route: DirectRoute,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        headers: Headers,
    ) -> None:
        self._route, self._connection, self._response, self._headers = route, connection, response, headers
        self._done = False

    def answer(self) -> Answer:
        response = self._response
        return Answer(response.status, response.reason or "", self._headers, self._read1, self._close)

    def _read1(self, size: int) -> bytes:
        if self._done:
            return b""
        response = self._response
        chunk = response.read1(size) if response.length != 0 else b""
        if chunk:
            return chunk
        if response.length:  # the server closed the connection before the length it declared
            self._end(reusable=False)
            raise http.client.IncompleteRead(b"", response.length)
        self._end(reusable=not response.will_close)  # will_close also when the framing is unsure (send)
        return b""

    def _close(self) -> None:
        self._end(reusable=False)

    def _end(self, *, reusable: bool) -> None:
        if self._done:
            return
        self._done = True
        self._response.close()  # its file only; the socket stays with the connection
        self._route._give_back(self._connection, reusable)


def _repeated_length(declared: str | None) -> int | None:
    """One length repeated (``40, 40``), which RFC 9112 6.3 lets a client read as that length; else None."""
    values = {value.strip() for value in (declared or "").split(",")}
    if len(values) != 1:
        return None
    (value,) = values
    return int(value) if value.isascii() and value.isdigit() else None


def _unsure_framing(status: int, headers: Mapping[str, str]) -> bool:
    """Whether what follows this answer on its connection may be more of it: after an interim (1xx) answer the
    final one may still arrive, and a 204 or 304 that declares a body (which they never have) may still send it.
    Such a connection is closed, never given to the next request."""
    if status < 200:
        return True
    if status not in (204, 304):
        return False
    length = headers.get("Content-Length")
    return "Transfer-Encoding" in headers or (length is not None and _repeated_length(length) != 0)


def _readable(sock: socket.socket) -> bool:
    """Whether an idle kept-alive socket has something to read: the server closed it (or misbehaves)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


# RFC 9110 5.1: a field name is a token
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_HEADER_LINE = 65536  # http.client's limits
_MAX_HEADERS = 100


class _LeanResponse(http.client.HTTPResponse):
    """``http.client``'s answer with its header block read without the email package.

    The email parser alone was a fifth of the CPU of a GET. Framing follows http.client (a length,
    chunks, or until the server closes), with three differences: a header line that is not
    ``name: value`` (or holds a bare CR or a NUL) is refused rather than ending the headers or hiding
    the next field; a transfer coding other than plain ``chunked`` is refused rather than read by
    ``Content-Length``; and the headers are :class:`Headers` (names case-insensitive, repeats joined).
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _header_lines(self.fp)  # the headers of a 100 Continue: skipped, as http.client does
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = _parse_headers(_header_lines(self.fp))
        self.headers = self.msg = headers
        coding = headers.get("Transfer-Encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            raise http.client.HTTPException("an answer with a transfer coding other than chunked")  # no echo: a token
        self.chunked, self.chunk_left = coding is not None, None
        self.will_close = self._check_close()
        # a length repeated ("40, 40") is that length (RFC 9112 6.3), which int() would not read
        self.length = None if self.chunked else _repeated_length(headers.get("Content-Length"))
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # the body ends when the server closes


def _header_lines(fp: Any) -> list[bytes]:
    """The lines of a header block, up to its empty line (or the end of the stream), within http.client's limits."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(_MAX_HEADER_LINE + 1)
        if len(line) > _MAX_HEADER_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line)
        if len(lines) >= _MAX_HEADERS:  # http.client counts the empty line too: 99 fields at most
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def _parse_headers(lines: list[bytes]) -> Headers:
    """``name: value`` lines as a case-insensitive dict; a folded line (RFC 9112 5.2) continues after a space."""
    fields: list[list[str]] = []
    for raw in lines:
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if "\r" in line or "\0" in line:  # RFC 9110 5.5: a bare CR could hide the next field inside this one
            raise http.client.HTTPException("an answer with a CR or NUL inside a header line")
        if line[:1] in (" ", "\t") and fields:
            folded = line.strip(" \t")
            fields[-1][1] = f"{fields[-1][1]} {folded}".strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise http.client.HTTPException("an answer with a header line that is not 'name: value'")  # no echo
        fields.append([name, value.strip(" \t")])
    headers = Headers()
    for name, value in fields:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


class _WatchedConnection(http.client.HTTPConnection):
    """Hands its socket to the attempt's deadline as soon as it is connected, before anything is sent."""

    response_class = _LeanResponse
    watched: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watched = []
        self._create_connection = self._connect_watched

    def _connect_watched(self, *args: Any, **kwargs: Any) -> socket.socket:
        sock = socket.create_connection(*args, **kwargs)
        self.watched = [sock]
        watch_socket(sock)  # before TLS is set up on it: the handshake is bounded too
        return sock

    def connect(self) -> None:
        super().connect()
        if all(self.sock is not known for known in self.watched):
            self.watched.append(self.sock)
            watch_socket(self.sock)


class _WatchedTLSConnection(_WatchedConnection, http.client.HTTPSConnection):
    pass
