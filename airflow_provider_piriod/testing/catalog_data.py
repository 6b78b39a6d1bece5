"""Generated products, their plans, and customers' subscriptions to those plans.

Products embed their plans when shown (the emulator adds them from the plans resource); a plan
names its ``product``; a subscription names its ``customer`` and, on each line, a ``plan``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from airflow_provider_piriod.testing.mint import (
    HISTORY_END,
    Mint,
    advance,
    country_of,
    iso_day,
    money,
    price,
    stamps,
)

# name, description, monthly price in USD, unit label, metered
PRODUCTS: list[tuple[str, str, Decimal, str | None, bool]] = [
    ("Facturación Electrónica", "Emisión de documentos tributarios electrónicos", Decimal("29.90"), "documento", False),
    ("Cobranza Automática", "Recordatorios y cobro de facturas vencidas", Decimal("49.00"), "cliente", False),
    ("Portal de Pagos", "Pagos en línea con tarjeta y transferencia", Decimal("19.90"), "transacción", True),
    ("Conciliación Bancaria", "Cruce automático de pagos y cartolas", Decimal("39.00"), "cuenta", False),
    ("Soporte Premium", "Atención prioritaria con ejecutivo dedicado", Decimal("99.00"), None, False),
    ("Integración ERP", "Sincronización con SAP, Softland y Defontana", Decimal("149.00"), None, False),
    ("Timbrado CFDI", "Timbres fiscales para facturas en México", Decimal("0.12"), "timbre", True),
    ("Almacenamiento de Documentos", "Respaldo de documentos por diez años", Decimal("9.90"), "GB", True),
]
FREQUENCIES = {"monthly": 60, "annual": 20, "quarterly": 10, "biannual": 5, "weekly": 5}
PERIOD_FACTOR = {
    "monthly": Decimal(1),
    "annual": Decimal(10),
    "quarterly": Decimal(3),
    "biannual": Decimal("5.5"),
    "weekly": Decimal("0.25"),
}
CATALOG_START = datetime(2023, 10, 2, 12, 0, tzinfo=HISTORY_END.tzinfo)
SUBSCRIPTION_STATUSES = {
    "active": {"active": 76, "needs_attention": 9, "paused": 7, "cancelled": 6, "finalized": 2},
    "pending": {"needs_attention": 55, "active": 45},
    "archived": {"cancelled": 70, "finalized": 30},
}
SUBSCRIPTIONS_PER_CUSTOMER = {"active": {1: 80, 2: 12, 0: 8}, "pending": {0: 60, 1: 40}, "archived": {1: 70, 0: 30}}
CANCEL_REASONS = ["not_paid", "insolvency", "no_card", "fraud_review_failed", "customer_request"]


def make_product(mint: Mint, index: int, created: datetime, *, test_mode: bool = False) -> dict[str, Any]:
    name, description, _, unit_label, _ = PRODUCTS[index % len(PRODUCTS)]
    if index >= len(PRODUCTS):
        name = f"{name} {index // len(PRODUCTS) + 1}"
    shape = mint.next_shape()
    created_text, updated_text = stamps(shape, "CL", created, mint.moment_after(created, 200))
    return {
        "id": mint.id("pro_"),
        "name": name,
        "description": description,
        "sku": f"PRD-{index + 1:03d}",
        "unit_label": unit_label,
        "status": mint.weighted({"active": 85, "archived": 15}),
        "metadata": {"family": "billing" if index % 2 == 0 else "payments"},
        "test_mode": test_mode,
        "created": created_text,
        "updated": updated_text,
    }


def make_plan(
    mint: Mint, product: dict[str, Any], currency: str, created: datetime, *, frequency: str | None = None
) -> dict[str, Any]:
    """A price of ``product`` in ``currency``; metered products bill usage through tiers."""
    index = _catalog_index(product)
    _, _, monthly_usd, unit_label, metered = PRODUCTS[index % len(PRODUCTS)]
    frequency = frequency or mint.weighted(FREQUENCIES)
    amount = price(monthly_usd * PERIOD_FACTOR[frequency], currency)
    shape = mint.next_shape()
    created_text, updated_text = stamps(shape, "CL", created, mint.moment_after(created, 120))
    status = "archived" if product.get("status") == "archived" else mint.weighted({"active": 88, "archived": 12})
    return {
        "id": mint.id("pla_"),
        "product": product["id"],
        "amount": amount,
        "currency": currency,
        "frequency": frequency,
        "usage_scheme": "metered" if metered else "licensed",
        "usage_aggregation": mint.weighted({"sum": 70, "max": 20, "last_record": 10}) if metered else None,
        "tiers_mode": "graduated" if metered else None,
        "tiers": _tiers(amount, currency) if metered else [],
        "sku": f"{product.get('sku') or 'PRD'}-{currency}-{frequency[:1].upper()}",
        "exempt": currency == "USD",
        "unit_label": unit_label,
        "status": status,
        "metadata": {},
        "test_mode": bool(product.get("test_mode")),
        "created": created_text,
        "updated": updated_text,
    }


def _catalog_index(product: dict[str, Any]) -> int:
    """Which catalog entry a product is (from its ``PRD-NNN`` sku); 0 for products made by hand."""
    sku = str(product.get("sku") or "")
    digits = sku.rpartition("-")[2]
    return int(digits) - 1 if sku.startswith("PRD-") and digits.isdigit() and int(digits) > 0 else 0


def _tiers(amount: Decimal, currency: str) -> list[dict[str, Any]]:
    return [{"up_to": 1000, "amount": amount}, {"up_to": None, "amount": money(amount * Decimal("0.8"), currency)}]


def make_catalog(mint: Mint, count: int, *, test_mode: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``count`` products, each priced in CLP and USD (monthly) and sometimes in MXN or COP too."""
    products, plans = [], []
    for index in range(count):
        created = CATALOG_START + timedelta(days=index * 9, seconds=mint.rng.randint(0, 86_399))
        product = make_product(mint, index, created, test_mode=test_mode)
        products.append(product)
        currencies = ["CLP", "USD", *mint.rng.sample(["MXN", "COP"], k=mint.rng.randint(0, 2))]
        for position, currency in enumerate(currencies):
            frequency = "monthly" if position < 2 else None
            plans.append(make_plan(mint, product, currency, mint.moment_after(created, 30), frequency=frequency))
    return products, plans


def pick_plans(mint: Mint, plans: list[dict[str, Any]], currency: str, count: int = 1) -> list[dict[str, Any]]:
    """Plans in the customer's currency (else USD), preferring active ones, from distinct products."""
    for wanted in (currency, "USD", None):
        pool = [p for p in plans if wanted is None or p["currency"] == wanted]
        active = [p for p in pool if p.get("status") == "active"] or pool
        if active:
            chosen: dict[str, dict[str, Any]] = {}
            for plan in mint.rng.sample(active, k=len(active)):
                chosen.setdefault(plan["product"], plan)
            picked = list(chosen.values())[:count]
            if len({p["currency"] for p in picked}) > 1:
                picked = picked[:1]
            return picked
    return []


def subscription_count(mint: Mint, customer: dict[str, Any]) -> int:
    return mint.weighted(SUBSCRIPTIONS_PER_CUSTOMER.get(customer.get("status", ""), {1: 1}))


def make_subscription(
    mint: Mint,
    customer: dict[str, Any],
    plans: list[dict[str, Any]],
    created: datetime,
    *,
    status: str | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A subscription of ``customer`` to ``plans`` (lines), billed each period of the first plan until now."""
    status = status or mint.weighted(SUBSCRIPTION_STATUSES.get(customer.get("status", ""), {"active": 1}))
    frequency = plans[0]["frequency"] if plans else "monthly"
    start = created.date() + timedelta(days=mint.rng.randint(0, 20))
    previous, following = _billing_around(start, frequency, max(HISTORY_END.date(), created.date()))
    ended = status in ("cancelled", "finalized")
    end_day = (previous or start) + timedelta(days=mint.rng.randint(1, 25)) if ended else None
    cancelled_at = datetime.combine(end_day, created.timetz()) if status == "cancelled" and end_day else None
    shape = mint.next_shape()
    country = country_of(customer)
    created_text, updated_text, cancelled_text = stamps(
        shape, country, created, mint.moment_after(created, 60), cancelled_at
    )
    return {
        "id": mint.id("sub_"),
        "customer": customer["id"],
        "status": status,
        "currency": plans[0]["currency"] if plans else customer.get("currency"),
        "date_start": iso_day(start),
        "end_date": iso_day(end_day),
        "billing_cycles": 12 if status == "finalized" else None,
        "next_billing": None if ended else iso_day(following),
        "previous_billing": iso_day(previous),
        "lines": [_subscription_line(mint, plan, (names or {}).get(plan["product"])) for plan in plans],
        "addons": [],
        "coupon": "BIENVENIDA20" if mint.rng.random() < 0.1 else None,
        "collection_scheme": "charge_payment" if customer.get("sources") else "send_invoice",
        "paused": status == "paused",
        "paused_reason": "customer_request" if status == "paused" else None,
        "cancelled": cancelled_text,
        "cancel_reason": mint.rng.choice(CANCEL_REASONS) if status == "cancelled" else None,
        "metadata": {"sales_rep": mint.rng.choice(["mfuentes", "psoto", "acardenas"])}
        if mint.rng.random() < 0.4
        else {},
        "test_mode": bool(customer.get("test_mode")),
        "created": created_text,
        "updated": updated_text,
    }


def _subscription_line(mint: Mint, plan: dict[str, Any], name: str | None) -> dict[str, Any]:
    return {
        "id": mint.id("lin_"),
        "plan": plan["id"],
        "product": plan["product"],
        "name": name or plan["sku"],
        "quantity": 1 if plan["usage_scheme"] == "metered" else mint.rng.choice((1, 1, 1, 2, 3, 5)),
        "amount": plan["amount"],
    }


def _billing_around(start: date, frequency: str, today: date) -> tuple[date | None, date]:
    """The last billing date on or before ``today`` (None before the first) and the one after it."""
    previous, periods = None, 0
    following = start
    while following <= today:
        previous = following
        periods += 1
        following = advance(start, frequency, periods)
    return previous, following


def billing_dates(subscription: dict[str, Any], frequency: str) -> list[date]:
    """Every period start of a subscription from ``date_start`` up to its last billing."""
    start = date.fromisoformat(subscription["date_start"])
    last = subscription.get("previous_billing")
    if last is None:
        return []
    days, periods = [], 0
    while (day := advance(start, frequency, periods)) <= date.fromisoformat(last):
        days.append(day)
        periods += 1
    return days
