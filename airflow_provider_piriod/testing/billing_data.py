"""Generated invoices, payments, credit notes and payment receipts, and the whole billing history of a workspace.

Relationships hold: an invoice's ``customer`` exists (and its ``subscription``, when set, is that
customer's); a payment names an invoice and that invoice's customer and subscription, and the invoice
lists it in ``payments``; a credit note names an invoice; a receipt names a succeeded payment.
Money is Decimal in the currency's major unit. One invoice of the first live customer has a total
with 17 significant digits (:data:`BIG_TOTAL_INVOICE_ID`), which a float cannot hold.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from airflow_provider_piriod.testing.catalog_data import (
    billing_dates,
    make_catalog,
    make_subscription,
    pick_plans,
    subscription_count,
)
from airflow_provider_piriod.testing.mint import (
    HISTORY_END,
    TAX_PERCENT,
    Mint,
    advance,
    country_of,
    created_of,
    iso_day,
    money,
    price,
    stamps,
)
from airflow_provider_piriod.testing.moments import restamp

BIG_TOTAL_INVOICE_ID = "inv_17DigitTotal0000000000"
BIG_TOTAL = Decimal("123456789012345.67")
INVOICE_STATUSES = {"paid": 60, "finalized": 25, "draft": 11, "uncollectible": 4}
COLLECTION_METHODS = {
    "automatically": 40,
    "deferred": 38,
    "deferred_dues": 8,
    "charge_automatically": 9,
    "manual": 5,
}  # old docs' values, then those seen in unofficial code
OPEN_ATTEMPTS = {
    "processing": 35,
    "failed": 20,
    "requires_payment_method": 12,
    "incomplete": 8,
    "cancelled": 18,
    "canceled": 7,
}  # new docs spell it "cancelled", old docs "canceled"
FAILED_REASONS = ["card_declined", "insufficient_funds", "expired_card", "do_not_honor"]
CREDIT_NOTE_STATUSES = {"finalized": 75, "draft": 15, "cancelled": 10}
CREDIT_NOTE_REASONS = ["Anulación de factura", "Descuento comercial", "Devolución de mercadería", "Corrección de monto"]
ONE_OFF_ITEMS = [
    ("Implementación", Decimal("350")),
    ("Horas de consultoría", Decimal("60")),
    ("Capacitación", Decimal("180")),
    ("Soporte adicional", Decimal("45")),
    ("Migración de datos", Decimal("420")),
]
Item = tuple[str, int, Decimal, "str | None"]  # name, quantity, unit amount, plan id


def make_invoice(
    mint: Mint,
    customer: dict[str, Any],
    created: datetime,
    *,
    status: str | None = None,
    subscription: dict[str, Any] | None = None,
    period: tuple[date, date] | None = None,
    items: list[Item] | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """An invoice of ``customer`` issued at ``created``: its lines, totals, dates and document data."""
    country = country_of(customer)
    status = status or mint.weighted(INVOICE_STATUSES)
    if currency is None:
        currency = (subscription or {}).get("currency") or customer.get("currency") or "CLP"
    if items is None:
        items = _subscription_items(subscription) or _one_off_items(mint, currency)
    lines = [_line(mint, name, quantity, amount, currency, plan) for name, quantity, amount, plan in items]
    day = created.date()
    period = period or (day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1]))
    document = 34 if currency == "USD" and country == "CL" else 33 if country == "CL" else 1
    shape = mint.next_shape()
    uncollectible_at = mint.moment_after(created, 90) if status == "uncollectible" else None
    created_text, updated_text, uncollectible_text = stamps(
        shape, country, created, mint.moment_after(created, 5), uncollectible_at
    )
    return {
        "id": mint.id("inv_"),
        "customer": customer["id"],
        "document": document,
        "number": None if status == "draft" else mint.folio(document),
        "currency": currency,
        **_totals(mint, lines, currency, country),
        "date": iso_day(day),
        "due_date": iso_day(day + timedelta(days=mint.rng.choice((0, 15, 30, 30, 45)))),
        "period_start": iso_day(period[0]),
        "period_end": iso_day(period[1]),
        "lines": lines,
        "payments": [],
        "references": [],
        "subscription": (subscription or {}).get("id"),
        "collection_method": mint.weighted(COLLECTION_METHODS),
        "status": status,
        "biller_status": None if status == "draft" else mint.weighted({"accepted": 90, "pending": 10}),
        "uncollectible": uncollectible_text,
        "metadata": _invoice_metadata(mint),
        "test_mode": bool(customer.get("test_mode")),
        "created": created_text,
        "updated": updated_text,
    }


def _subscription_items(subscription: dict[str, Any] | None) -> list[Item]:
    lines = (subscription or {}).get("lines", [])
    return [(line["name"], line["quantity"], line["amount"], line["plan"]) for line in lines]


def _one_off_items(mint: Mint, currency: str) -> list[Item]:
    picked = mint.rng.sample(ONE_OFF_ITEMS, k=mint.rng.choice((1, 1, 2, 3)))
    return [(name, mint.rng.randint(1, 12), price(usd, currency), None) for name, usd in picked]


def _line(mint: Mint, name: str, quantity: int, amount: Decimal, currency: str, plan: str | None) -> dict[str, Any]:
    return {
        "id": mint.id("lin_"),
        "name": name,
        "quantity": quantity,
        "amount": amount,
        "discount": money(0, currency),
        "exempt": currency == "USD",
        "total": money(amount * quantity, currency),
        "plan": plan,
    }


def _totals(mint: Mint, lines: list[dict[str, Any]], currency: str, country: str) -> dict[str, Any]:
    """Amount, discount, exempt part, tax and total; USD invoices are exports (exempt, no tax)."""
    amount = sum((line["total"] for line in lines), money(0, currency))
    scheme, discount = mint.weighted({("%", 0): 85, ("%", 10): 10, ("$", 1): 5})
    off = money(amount * discount / 100, currency) if scheme == "%" else min(amount, price(Decimal(20), currency))
    discount_value = Decimal(discount) if scheme == "%" else off
    subtotal = amount - off
    exempt_share = sum((line["total"] for line in lines if line["exempt"]), money(0, currency))
    exempt = money(exempt_share * subtotal / amount, currency) if amount else money(0, currency)
    tax_percent = 0 if currency == "USD" else TAX_PERCENT.get(country, 19)
    tax = money((subtotal - exempt) * tax_percent / 100, currency)
    total = subtotal + tax
    return {
        "amount": amount,
        "exempt": exempt,
        "tax": tax,
        "tax_percent": tax_percent,
        "subtotal": subtotal,
        "total": total,
        "total_adjusted": total,
        "retention": money(0, currency),
        "discount": discount_value,
        "discount_scheme": scheme,
    }


def _invoice_metadata(mint: Mint) -> dict[str, Any]:
    kind = mint.weighted({"none": 50, "erp": 30, "order": 20})
    if kind == "erp":
        return {"erp_id": f"ERP-{mint.rng.randint(100000, 999999)}"}
    if kind == "order":
        return {"order": f"OC-{mint.rng.randint(1000, 9999)}", "cost_center": mint.rng.choice(["CC-10", "CC-20"])}
    return {}


def make_big_total_invoice(mint: Mint, customer: dict[str, Any]) -> dict[str, Any]:
    """A finalized USD invoice whose total, 123456789012345.67, has 17 significant digits."""
    created = max(created_of(customer), HISTORY_END - timedelta(days=20)) + timedelta(hours=2)
    invoice = make_invoice(
        mint,
        customer,
        created,
        status="finalized",
        currency="USD",
        items=[("Licencia corporativa plurianual", 1, BIG_TOTAL, None)],
    )
    invoice.update(id=BIG_TOTAL_INVOICE_ID, metadata={"scenario": "seventeen_digit_total"})
    invoice.update(_exact_totals(BIG_TOTAL))
    return invoice


def _exact_totals(total: Decimal) -> dict[str, Any]:
    zero = Decimal("0.00")
    return {
        "amount": total,
        "exempt": total,
        "tax": zero,
        "tax_percent": 0,
        "subtotal": total,
        "total": total,
        "total_adjusted": total,
        "retention": zero,
        "discount": Decimal(0),
        "discount_scheme": "%",
    }


def make_payment(
    mint: Mint,
    invoice: dict[str, Any],
    customer: dict[str, Any] | None,
    created: datetime,
    *,
    status: str | None = "succeeded",
) -> dict[str, Any]:
    """A payment attempt of ``invoice`` by its customer; only a succeeded one has a ``payment_date``."""
    succeeded = status == "succeeded"
    sources = (customer or {}).get("sources") or []
    shape = mint.next_shape()
    created_text, updated_text, paid_text = stamps(
        shape, country_of(customer), created, mint.moment_after(created, 1), created if succeeded else None
    )
    number = invoice.get("number")
    return {
        "id": mint.id("pay_"),
        "amount": invoice["total"],
        "currency": invoice["currency"],
        "date": iso_day(created.date()),
        "description": f"Pago factura N° {number}" if number is not None else "Pago de factura",
        "invoice": invoice["id"],
        "subscription": invoice.get("subscription"),
        "customer": invoice["customer"],
        "balance": money(0, invoice["currency"]) if succeeded else invoice["total"],
        "payment_date": paid_text,
        "source": mint.rng.choice(sources) if sources else None,
        "failed_reason": mint.rng.choice(FAILED_REASONS) if status == "failed" else None,
        "status": status,
        "metadata": {"gateway": mint.rng.choice(["webpay", "khipu", "transfer"])} if mint.rng.random() < 0.5 else {},
        "test_mode": bool(invoice.get("test_mode")),
        "created": created_text,
        "updated": updated_text,
    }


def make_credit_note(
    mint: Mint, invoice: dict[str, Any], created: datetime, *, status: str | None = None
) -> dict[str, Any]:
    """A credit note (integer id) cancelling ``invoice`` in full or crediting part of it."""
    status = status or mint.weighted(CREDIT_NOTE_STATUSES)
    currency = invoice["currency"]
    country = "CL" if invoice.get("document") in (33, 34) else "MX"
    if mint.rng.random() < 0.5:
        items = [(line["name"], line["quantity"], line["amount"], line.get("plan")) for line in invoice["lines"]]
    else:
        items = [("Descuento comercial", 1, money(invoice["subtotal"] * Decimal("0.2"), currency), None)]
    lines = [_line(mint, name, quantity, amount, currency, plan) for name, quantity, amount, plan in items]
    document = 61 if country == "CL" else 2
    created_text, updated_text = stamps(mint.next_shape(), country, created, mint.moment_after(created, 3))
    return {
        "id": mint.integer_id("creditnotes"),
        "invoice": invoice["id"],
        "document": document,
        "number": None if status == "draft" else mint.folio(document),
        "currency": currency,
        **_totals(mint, lines, currency, country),
        "date": iso_day(created.date()),
        "status": status,
        "biller_status": None if status == "draft" else "accepted",
        "note": mint.rng.choice(CREDIT_NOTE_REASONS),
        "lines": lines,
        "metadata": {},
        "test_mode": bool(invoice.get("test_mode")),
        "created": created_text,
        "updated": updated_text,
    }


def make_receipt(
    mint: Mint, payment: dict[str, Any], created: datetime, *, status: str | None = None
) -> dict[str, Any]:
    """A payment receipt (integer id) for ``payment``."""
    status = status or mint.weighted({"finalized": 90, "draft": 10})
    created_text, updated_text = stamps(mint.next_shape(), "CL", created, mint.moment_after(created, 2))
    return {
        "id": mint.integer_id("payment-receipts"),
        "customer": payment["customer"],
        "payment": payment["id"],
        "sources": [payment["source"]] if payment.get("source") else [],
        "number": None if status == "draft" else mint.folio("receipt"),
        "amount": payment["amount"],
        "currency": payment["currency"],
        "date": payment["date"],
        "status": status,
        "biller_status": None if status == "draft" else "accepted",
        "metadata": {},
        "test_mode": bool(payment.get("test_mode")),
        "created": created_text,
        "updated": updated_text,
    }


def catalog_size_in_test_mode(products: int) -> int:
    """Test-mode products: about a third of the live catalog, at least one when there is a catalog."""
    return max(1, products // 3) if products else 0


def make_billing(
    mint: Mint, customers: list[dict[str, Any]], *, products: int, invoices_per_customer: int, big_total: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Catalog, subscriptions, invoices, payments, credit notes and receipts for ``customers``."""
    made: dict[str, list[dict[str, Any]]] = {
        name: []
        for name in ("products", "plans", "subscriptions", "invoices", "payments", "creditnotes", "payment-receipts")
    }
    plans_by_mode: dict[bool, list[dict[str, Any]]] = {}
    for test_mode, count in ((False, products), (True, catalog_size_in_test_mode(products))):
        catalog, plans = make_catalog(mint, count, test_mode=test_mode)
        made["products"] += catalog
        made["plans"] += plans
        plans_by_mode[test_mode] = plans
    names = {product["id"]: product["name"] for product in made["products"]}
    for customer in customers:
        _bill_customer(
            mint, customer, plans_by_mode[bool(customer.get("test_mode"))], names, invoices_per_customer, made
        )
    _at_least_one_of_each(mint, made)
    live = next((c for c in customers if not c.get("test_mode")), None)
    if big_total and live is not None:
        made["invoices"].append(make_big_total_invoice(mint, live))
    return made


def _at_least_one_of_each(mint: Mint, made: dict[str, list[dict[str, Any]]]) -> None:
    """Credit notes and receipts are rare; make sure each mode has one when something can carry it."""
    for test_mode in (False, True):
        issued = [i for i in _of_mode(made["invoices"], test_mode) if i["status"] in ("paid", "finalized")]
        if issued and not _of_mode(made["creditnotes"], test_mode):
            invoice = issued[0]
            made["creditnotes"].append(make_credit_note(mint, invoice, mint.moment_after(created_of(invoice), 20)))
        succeeded = [p for p in _of_mode(made["payments"], test_mode) if p["status"] == "succeeded"]
        if succeeded and not _of_mode(made["payment-receipts"], test_mode):
            payment = succeeded[0]
            made["payment-receipts"].append(make_receipt(mint, payment, mint.moment_after(created_of(payment), 1)))


def _bill_customer(
    mint: Mint,
    customer: dict[str, Any],
    plans: list[dict[str, Any]],
    names: dict[str, str],
    invoices_per_customer: int,
    made: dict[str, list[dict[str, Any]]],
) -> None:
    created = created_of(customer)
    periods: list[tuple[dict[str, Any], date, date]] = []
    for _ in range(subscription_count(mint, customer)):
        chosen = pick_plans(mint, plans, customer.get("currency") or "CLP", count=mint.rng.choice((1, 1, 1, 2)))
        subscription = make_subscription(mint, customer, chosen, mint.moment_after(created, 3), names=names)
        made["subscriptions"].append(subscription)
        frequency = chosen[0]["frequency"] if chosen else "monthly"
        periods += [
            (subscription, day, advance(day, frequency) - timedelta(days=1))
            for day in billing_dates(subscription, frequency)
        ]
    span_days = max(1.0, (HISTORY_END - created).total_seconds() / 86_400)
    for _ in range(mint.rng.randint(0, 2 * invoices_per_customer)):
        if periods and mint.rng.random() < 0.75:
            subscription, start, end = periods.pop(mint.rng.randrange(len(periods)))
            morning = datetime.combine(start, time(9, tzinfo=created.tzinfo))
            issued = morning + timedelta(seconds=mint.rng.randint(0, 28_800))
            invoice = make_invoice(mint, customer, issued, subscription=subscription, period=(start, end))
        else:
            invoice = make_invoice(mint, customer, mint.moment_after(created, span_days))
        made["invoices"].append(invoice)
        _settle(mint, invoice, customer, made)


def _settle(
    mint: Mint, invoice: dict[str, Any], customer: dict[str, Any], made: dict[str, list[dict[str, Any]]]
) -> None:
    """Payment attempts for an invoice as its status implies, then perhaps a credit note and a receipt."""
    status = invoice["status"]
    attempts: list[str] = []
    if status == "paid":
        attempts = (["failed"] if mint.rng.random() < 0.08 else []) + ["succeeded"]
    elif status == "finalized" and mint.rng.random() < 0.5:
        attempts = [mint.weighted(OPEN_ATTEMPTS)]
    elif status == "uncollectible":
        attempts = ["failed"] * mint.rng.choice((1, 1, 2))
    moment = created_of(invoice)
    for attempt in attempts:
        moment = mint.moment_after(moment, 12)
        payment = make_payment(mint, invoice, customer, moment, status=attempt)
        made["payments"].append(payment)
        invoice["payments"].append(payment["id"])
        if attempt == "succeeded":
            invoice["updated"] = restamp(invoice["updated"], mint.moment_after(moment, 0.01))
            if mint.rng.random() < 0.2:
                made["payment-receipts"].append(make_receipt(mint, payment, mint.moment_after(moment, 1)))
    if status in ("paid", "finalized") and mint.rng.random() < 0.07:
        made["creditnotes"].append(make_credit_note(mint, invoice, mint.moment_after(created_of(invoice), 20)))


def _of_mode(records: list[dict[str, Any]], test_mode: bool) -> list[dict[str, Any]]:
    return [record for record in records if record["test_mode"] is test_mode]
