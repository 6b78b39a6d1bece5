"""
Wait, on the triggerer, until an invoice is paid, then fulfil the order it bills.

The sensor checks once right away; if the invoice is not ``paid`` yet it defers to
``PiriodTrigger`` and frees its worker slot. An ``uncollectible`` invoice (the invoices' default
fail status) fails the wait at once instead of at the timeout. Deferrable mode needs a running
triggerer (``airflow triggerer``).

The sensor pushes the paid invoice's JSON to XCom. Amounts of up to 15 significant digits arrive
as numbers; a longer one (a float cannot hold it) arrives as a ``decimal.Decimal`` with every digit,
so ``fulfil_order`` reads money through ``Decimal(str(...))`` and never does arithmetic on floats.

    airflow dags test example_piriod_wait_for_payment -c '{"invoice_id": "inv_..."}'
"""

from __future__ import annotations

from decimal import Decimal

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_piriod.sensors.piriod import PiriodSensor

with DAG(
    dag_id="example_piriod_wait_for_payment",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"invoice_id": Param("inv_01H8XYZ123ABC", type="string", description="Piriod invoice id")},
    tags=["example", "piriod"],
) as dag:
    paid_invoice = PiriodSensor(
        task_id="wait_until_paid",
        resource="invoices",
        object_id="{{ params.invoice_id }}",
        target_status="paid",  # fails at once on "uncollectible"
        deferrable=True,
        poke_interval=5,
        timeout=7 * 24 * 60 * 60,
    )

    @task
    def fulfil_order(invoice: dict) -> dict:
        """What shipping the order would do with the paid invoice: who, what, and how much was paid."""
        total = Decimal(str(invoice["total"]))  # exact whether the JSON gave a float or a Decimal
        order = (invoice.get("metadata") or {}).get("order") or f"order for invoice {invoice['number']}"
        items = [line.get("name") for line in invoice.get("lines") or []]
        print(f"Fulfilling {order}: {', '.join(map(str, items))}; paid {invoice['currency']} {total}")
        return {
            "invoice": invoice["id"],
            "order": order,
            "customer": invoice["customer"],
            "items": items,
            "currency": invoice["currency"],
            "total": str(total),
        }  # the digits, as text: exact anywhere

    fulfil_order(paid_invoice.output)
