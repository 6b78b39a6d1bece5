"""HTTP answers as plain values, and the ASGI messages that send them or read a request body."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_piriod.testing.jsontext import dumps_bytes


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON answer; Decimal money is written with every digit."""
    return Response(status, dumps_bytes(data), headers or [])


def not_found() -> Response:
    """Django REST Framework's 404 body."""
    return json_response(404, {"detail": "Not found."})


def start_message(response: Response, length: int) -> dict:
    headers = [(b"content-type", response.content_type.encode()), (b"content-length", str(length).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers]
    return {"type": "http.response.start", "status": response.status, "headers": headers}


async def send_response(send: Callable, response: Response) -> None:
    await send(start_message(response, len(response.body)))
    await send({"type": "http.response.body", "body": response.body})


async def read_body(receive: Callable) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
