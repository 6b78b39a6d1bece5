"""Requests per second the emulator serves to 32 concurrent clients, at 0 ms and 20 ms latency.

The emulator runs in its own process. The load comes from one asyncio process holding 32
keep-alive connections, each sending GET /customers/{id}/ back to back for a fixed time; it
speaks HTTP/1.1 directly on the socket so the client costs as little as possible. Both share
this machine's cores; the CPU columns say which side was busy.

    .venv/bin/python benchmarks/emulator_throughput.py [--seconds 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from urllib.parse import urlsplit

from airflow_provider_piriod.testing import PiriodEmulator


async def client(url: str, headers: bytes, ids: list[str], offset: int, step: int, stop: float) -> tuple[int, int]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    done = errors = 0
    index = offset
    try:
        while time.monotonic() < stop:
            writer.write(f"GET /customers/{ids[index % len(ids)]}/ HTTP/1.1\r\n".encode() + headers)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
            errors += not head.startswith(b"HTTP/1.1 200")
            index += step
    finally:
        writer.close()
    return done, errors


async def load(emulator: PiriodEmulator, clients: int, seconds: float) -> tuple[int, int]:
    ids = [c["id"] for c in emulator.customers()]
    host = urlsplit(emulator.url).netloc
    headers = (
        f"Host: {host}\r\nAuthorization: Token {emulator.token}\r\nx-simple-workspace: {emulator.workspace}\r\n\r\n"
    ).encode()
    stop = time.monotonic() + seconds
    results = await asyncio.gather(*(client(emulator.url, headers, ids, i, clients, stop) for i in range(clients)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {args.clients} concurrent keep-alive clients, {args.seconds:g} s per run")
    print(
        f"{'latency':>8} {'requests':>9} {'errors':>7} {'req/s':>8} {'ceiling':>8} "
        f"{'server cpu':>11} {'client cpu':>11}"
    )
    for latency in (0, 20):
        server_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_before = time.process_time()
        with PiriodEmulator(customers=1000, latency_ms=latency, in_process=False) as emulator:
            started = time.monotonic()
            done, errors = asyncio.run(load(emulator, args.clients, args.seconds))
            elapsed = time.monotonic() - started
        server = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = server.ru_utime + server.ru_stime - server_before.ru_utime - server_before.ru_stime
        ceiling = f"{args.clients / (latency / 1000):.0f}" if latency else "-"
        print(
            f"{latency:>6}ms {done:>9} {errors:>7} {done / elapsed:>8.0f} {ceiling:>8} "
            f"{server_cpu:>10.1f}s {time.process_time() - client_before:>10.1f}s"
        )


if __name__ == "__main__":
    main()
