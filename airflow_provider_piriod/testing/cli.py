"""``piriod-emulator``: serve the Piriod emulator on loopback until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0 = any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1 to 65535, or 0 for any free port")
    return port


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="piriod-emulator",
        description="A local Piriod API for offline tests. Serves GET /{resource}/ and /{resource}/{id}/ for "
        "customers, contacts, invoices, payments, subscriptions, creditnotes, plans, products and "
        "payment-receipts, with consistent relationships; control API under /__emulator__/.",
        epilog="Contacts are the ones customers embed. Products, plans, subscriptions, invoices, payments, credit "
        "notes (integer ids) and payment receipts (integer ids) are generated from the customers on first use. "
        "Invoice inv_17DigitTotal0000000000 has the total 123456789012345.67 (17 significant digits).",
    )
    parser.add_argument("--port", type=port_number, default=8765, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--customers", type=int, default=100, help="customers to generate (plus their contacts)")
    parser.add_argument(
        "--products",
        type=int,
        default=6,
        help="live products to generate, each with plans in CLP and USD (and a third as many test-mode products)",
    )
    parser.add_argument(
        "--invoices-per-customer",
        type=int,
        default=3,
        help="average invoices per customer; payments, credit notes and receipts follow from them",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the generated data")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="requests per second before answering 429 with Retry-After (0 = no limit)",
    )
    parser.add_argument("--token", default="", help="API token to accept (default: derived from the seed)")
    parser.add_argument("--workspace", default="", help="workspace id to serve (default: derived from the seed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from airflow_provider_piriod.testing.server import bind_loopback, make_server
    from airflow_provider_piriod.testing.state import EmulatorState

    state = EmulatorState(
        customers=args.customers,
        seed=args.seed,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        token=args.token,
        workspace=args.workspace,
        products=args.products,
        invoices_per_customer=args.invoices_per_customer,
    )
    try:
        sock = bind_loopback(args.port)
    except OSError as exc:
        why = {errno.EADDRINUSE: "is in use", errno.EACCES: "needs privileges this user does not have"}
        if exc.errno not in why:
            raise
        print(
            f"piriod-emulator: port {args.port} on 127.0.0.1 {why[exc.errno]}; choose another with --port "
            "(`make emulator PORT=8766`), or --port 0 for any free one",
            file=sys.stderr,
        )
        return 2
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    conn = {"conn_type": "piriod", "host": url, "login": state.workspace, "password": state.token}
    print(f"Piriod emulator listening on {url}", flush=True)
    print(f"  workspace: {state.workspace}")
    print(f"  token:     {state.token}")
    print(
        f"  customers: {len(state.records())} live, {len(state.records(test_mode=True))} test mode; also contacts, "
        "invoices, payments, subscriptions, creditnotes, plans, products, payment-receipts"
    )
    print(f"export AIRFLOW_CONN_PIRIOD_DEFAULT='{json.dumps(conn)}'", flush=True)
    server = make_server(state, sock)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
