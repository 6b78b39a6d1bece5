"""
JSON decoders on two of the emulator's pages, side by side in one run: 100 customers, and 100 invoices (many money
fields). Times are the best of several rounds, in ms per page, with the ratio to plain ``json.loads``; "exact"
says whether a money literal of more than 15 significant digits keeps its digits.

    .venv/bin/python benchmarks/decoders.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="piriod-decoders-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import requests

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.testing import PiriodEmulator

EXACTNESS_PROBE = b'{"total": 123456789012345.67}'


def candidates() -> dict[str, Callable[[bytes], Any]]:
    """The decoders this environment has, by the name printed."""
    found: dict[str, Callable[[bytes], Any]] = {"json.loads": json.loads}
    try:
        import pydantic_core

        found["pydantic_core.from_json"] = pydantic_core.from_json
    except ImportError:
        pass
    try:
        import msgspec

        found["msgspec.json.decode"] = msgspec.json.Decoder().decode
    except ImportError:
        pass
    found["jsoncodec, json path (exact)"] = jsoncodec._json_loads
    if jsoncodec._fast_decoder() is not None:
        found["jsoncodec.loads, msgspec path (exact)"] = jsoncodec.loads
    return found


def fetch_pages() -> dict[str, bytes]:
    """The first page of 100 customers and of 100 invoices, as the emulator sends them."""
    with PiriodEmulator(customers=300, seed=1) as emulator:
        headers = {"Authorization": f"Token {emulator.token}", "x-simple-workspace": emulator.workspace}
        return {
            resource: requests.get(
                f"{emulator.url}/{resource}/", params={"page_size": 100}, headers=headers, timeout=30
            ).content
            for resource in ("customers", "invoices")
        }


def best_ms(decoders: dict[str, Callable[[bytes], Any]], body: bytes, rounds: int, loops: int = 40) -> dict[str, float]:
    """Each decoder's fastest round of ``loops`` decodes, in ms per decode; rounds interleave the decoders."""
    best = dict.fromkeys(decoders, float("inf"))
    for _ in range(rounds):
        for name, decode in decoders.items():
            started = time.perf_counter()
            for _ in range(loops):
                decode(body)
            best[name] = min(best[name], (time.perf_counter() - started) / loops * 1000)
    return best


def is_exact(decode: Callable[[bytes], Any]) -> bool:
    total = decode(EXACTNESS_PROBE)["total"]
    return isinstance(total, Decimal) and str(total) == "123456789012345.67"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    pages = fetch_pages()
    print(
        f"{os.cpu_count()} cores; pages: "
        + ", ".join(f"{name} {len(body) / 1024:.0f} KiB" for name, body in pages.items())
    )
    decoders = candidates()
    times = {page: best_ms(decoders, body, args.rounds) for page, body in pages.items()}
    print(f"  {'decoder':<40} {'exact':>5} {'customers ms':>13} {'ratio':>6} {'invoices ms':>12} {'ratio':>6}")
    for name, decode in decoders.items():
        customers, invoices = times["customers"][name], times["invoices"][name]
        print(
            f"  {name:<40} {'yes' if is_exact(decode) else 'no':>5} {customers:13.3f} "
            f"{customers / times['customers']['json.loads']:6.2f} {invoices:12.3f} "
            f"{invoices / times['invoices']['json.loads']:6.2f}"
        )


if __name__ == "__main__":
    main()
