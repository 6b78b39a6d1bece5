"""The emulator sends a small answer in one piece, as a production server does (its faults: test_faults.py)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from airflow_provider_piriod.testing import PiriodEmulator


def _request(emulator, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: piriod\r\nAuthorization: Token {emulator.token}\r\n"
        f"x-simple-workspace: {emulator.workspace}\r\n\r\n"
    ).encode()


def test_each_answer_arrives_with_its_body_in_the_first_read():
    # in a process of its own: in this one, the test's thread could only read once the emulator's thread had
    # written both parts anyway
    with PiriodEmulator(customers=30, in_process=False) as emulator:
        url = urlsplit(emulator.url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            for customer in emulator.customers()[:20]:
                sock.sendall(_request(emulator, f"/customers/{customer['id']}/"))
                first = sock.recv(1 << 20)  # before: often the header block alone, the body in a second segment
                head, _, body = first.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                assert head.startswith(b"HTTP/1.1 200") and len(body) == length
