"""Spot filter mistakes Piriod would answer silently: a misspelt key, or a list given without ``__in``.

Piriod ignores query parameters it does not know, so ``{"contry": "CL"}`` matches every customer;
and it reads ``status=active,pending`` as one status, so a list without ``__in`` matches none.
Nothing here refuses a filter (Piriod may know more than its docs say): the hooks log what these
functions find, once per call, unless the connection sets ``warn_unknown_filters`` to false.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from airflow_provider_piriod.resources import Resource

#: keys any list takes besides the resource's own (``metadata__<key>`` matches a metadata field)
_ANY_RESOURCE_PREFIXES = ("metadata__",)
_IN = "__in"


def filter_problems(resource: Resource, filters: Mapping[str, Any] | None) -> list[str]:
    """What looks wrong in ``filters`` for ``resource``, one sentence per key; empty when all is well."""
    problems = []
    for key, value in (filters or {}).items():
        if not isinstance(key, str):
            continue
        if not _is_documented(resource, key):
            problems.append(_unknown_key(resource, key))
        if isinstance(value, (list, tuple, set, frozenset)) and not key.endswith(_IN):
            problems.append(
                f"{_shown(key)} is given a list, which Piriod reads as one comma-joined value (so it matches "
                f"almost nothing); write {_shown(key + _IN, tail=len(_IN))} to match any of the values"
            )
    return problems


def problems_message(resource: Resource, problems: list[str], conn_id: str) -> str:
    """The one warning line a call logs for its filters."""
    return (
        f"Piriod {resource.name} filters: {'; '.join(problems)}. The filters are sent as given. "
        f"Silence this with the extra warn_unknown_filters=false on connection {conn_id!r}."
    )


def _is_documented(resource: Resource, key: str) -> bool:
    """A key the registry lists for ``resource``, its ``__in`` form, or ``metadata__<key>``.

    A resource for which no filters are documented has nothing to compare against: any key passes.
    """
    known = resource.filters
    if not known or key in known or key.startswith(_ANY_RESOURCE_PREFIXES):
        return True
    return key.endswith(_IN) and key[: -len(_IN)] in known


def _unknown_key(resource: Resource, key: str) -> str:
    candidates = [*resource.filters, *(f"{name}{_IN}" for name in resource.filters if not name.endswith(_IN))]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"documented: {', '.join(resource.filters)}"
    return (
        f"{_shown(key)} is not a filter Piriod documents for {resource.name} ({hint}); Piriod ignores "
        "parameters it does not know, so this filter may match everything"
    )


def _shown(key: str, limit: int = 60, tail: int = 0) -> str:
    """``key`` quoted for a warning, cut to ``limit`` characters (keeping its last ``tail``): keys can be huge."""
    if len(key) <= limit:
        return repr(key)
    return repr(f"{key[: limit - tail]}...{key[len(key) - tail :] if tail else ''}")
