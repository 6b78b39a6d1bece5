"""Send each answer in as few TCP segments as a production server would: :func:`one_turn_protocol`.

uvicorn writes a response's header block and its body as two writes, and each write is sent at once,
so a small answer reached clients as two segments: a client woke up for the headers, then again for
the body. Servers in front of real APIs send a small answer in one. Here what the emulator writes
during one turn of the event loop leaves at the end of that turn, together; a trickled body (the
``slow_body`` fault) still leaves byte by byte, since it sleeps between writes.
"""

from __future__ import annotations

import asyncio
from typing import Any


class _TurnTransport:
    """A transport whose writes wait for the end of the event loop's turn and then go out as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(b"".join(held))

    def close(self) -> None:
        self._flush()  # closing sends what is buffered first, as the transport itself does
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def one_turn_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) writing through :class:`_TurnTransport`."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class OneTurnHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(_TurnTransport(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]

    return OneTurnHTTPProtocol
