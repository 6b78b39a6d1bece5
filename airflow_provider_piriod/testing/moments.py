"""Piriod's dates and its three timestamp shapes: read any of them, write each of them.

The docs show ``2023-11-07T05:31:56Z``, ``2020-07-01T20:36:04.301041-04:00`` and ``2020-05-12 15:42:09``
(no zone, read as UTC). Customers use a fourth, ``...T05:31:56.123456Z``, which stays as it is.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

SHAPES = ("zulu", "offset", "naive")
UTC_OFFSETS = {"CL": -4, "MX": -6, "CO": -5}  # the local offset written in the "offset" shape


def parse_moment(value: Any) -> datetime | None:
    """Any documented timestamp (or a bare date, meaning midnight) as an aware datetime; None if unreadable."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        # a "+01:00" offset in a query string arrives as " 01:00" when the client did not encode the "+"
        moment = datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_day(value: Any) -> date | None:
    """A ``YYYY-MM-DD`` date; None if unreadable."""
    if not isinstance(value, str) or len(value.strip()) != 10:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def format_moment(moment: datetime, shape: str, country: str | None = None) -> str:
    """``moment`` written in one of :data:`SHAPES`; the offset shape uses ``country``'s local offset."""
    if shape == "zulu":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if shape == "naive":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    local = timezone(timedelta(hours=UTC_OFFSETS.get(country or "", -4)))
    return moment.astimezone(local).isoformat(timespec="microseconds")


def restamp(previous: Any, moment: datetime) -> str:
    """``moment`` in the shape of ``previous`` (so an update keeps a record's own timestamp style)."""
    text = previous if isinstance(previous, str) else ""
    if text.endswith("Z"):
        if "." in text:
            return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return format_moment(moment, "zulu")
    if "T" not in text and " " in text:
        return format_moment(moment, "naive")
    earlier = parse_moment(text)
    zone = earlier.tzinfo if earlier is not None else timezone.utc
    return moment.astimezone(zone).isoformat(timespec="microseconds")
