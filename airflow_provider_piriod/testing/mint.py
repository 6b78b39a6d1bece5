"""What every billing-record generator shares: the random source, ids, timestamp shapes, money and calendar."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from airflow_provider_piriod.testing.data import ALPHABET
from airflow_provider_piriod.testing.moments import SHAPES, format_moment, parse_moment

ZERO_DECIMAL_CURRENCIES = frozenset({"CLP"})  # no minor unit: whole numbers
USD_RATE = {"USD": Decimal(1), "CLP": Decimal(950), "MXN": Decimal(17), "COP": Decimal(4000)}
TAX_PERCENT = {"CL": 19, "MX": 16, "CO": 19}
HISTORY_END = datetime(2026, 6, 1, tzinfo=timezone.utc)  # seeded customers are created before this
FREQUENCY_MONTHS = {"monthly": 1, "quarterly": 3, "biannual": 6, "annual": 12}


class Mint:
    """Random choices, ids and timestamps for one workspace's generated records (deterministic per seed)."""

    def __init__(self, rng: random.Random, integer_ids: dict[str, Iterator[int]]) -> None:
        self.rng = rng
        self.integer_ids = integer_ids  # shared by every workspace, so integer ids stay unique
        self._folios: dict[Any, Iterator[int]] = defaultdict(lambda: itertools.count(1001))
        self._shapes = itertools.cycle(SHAPES)

    def id(self, prefix: str) -> str:
        """``prefix`` and 22 random letters and digits, like customer ids (drawn in one call: there are many)."""
        return prefix + "".join(self.rng.choices(ALPHABET, k=22))

    def integer_id(self, resource: str) -> int:
        return next(self.integer_ids[resource])

    def folio(self, document: Any) -> int:
        """The next document number of a document type (Chile numbers each type on its own)."""
        return next(self._folios[document])

    def next_shape(self) -> str:
        """Timestamp shapes taken in turn, so every resource shows all three."""
        return next(self._shapes)

    def weighted(self, table: dict[Any, int]) -> Any:
        return self.rng.choices(list(table), weights=list(table.values()))[0]

    def moment_after(self, start: datetime, max_days: float) -> datetime:
        return start + timedelta(
            seconds=self.rng.randint(60, max(61, int(max_days * 86_400))), microseconds=self.rng.randint(0, 999_999)
        )


def stamps(shape: str, country: str, *moments: datetime | None) -> list[str | None]:
    """Several timestamps of one record, all in that record's shape."""
    return [None if m is None else format_moment(m, shape, country) for m in moments]


def money(value: Decimal | int | str, currency: str) -> Decimal:
    """An amount in the currency's major unit: whole for CLP, two decimals otherwise."""
    step = Decimal(1) if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return Decimal(value).quantize(step, rounding=ROUND_HALF_UP)


def price(usd: Decimal, currency: str) -> Decimal:
    """A list price converted from USD; CLP prices end in 00, as Chilean price lists do."""
    converted = usd * USD_RATE.get(currency, Decimal(1))
    if currency in ZERO_DECIMAL_CURRENCIES:
        return Decimal(int((converted / 100).to_integral_value(ROUND_HALF_UP)) * 100)
    return money(converted, currency)


def country_of(customer: dict[str, Any] | None) -> str:
    country = (customer or {}).get("country")
    return country.get("id", "CL") if isinstance(country, dict) else (country or "CL")


def created_of(record: dict[str, Any] | None, default: datetime = HISTORY_END) -> datetime:
    return parse_moment((record or {}).get("created")) or default


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(f"no day {day.day} in {year}-{month}")


def advance(day: date, frequency: str, periods: int = 1) -> date:
    """``day`` moved forward by ``periods`` billing periods."""
    if frequency == "weekly":
        return day + timedelta(weeks=periods)
    return add_months(day, FREQUENCY_MONTHS.get(frequency, 1) * periods)


def iso_day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
