"""Walking Piriod's list pages: each object yielded once, and a walk that ends rather than reads without end.

Which ``next`` links may be followed at all is a rule of Piriod's protocol (``protocol.follow_next``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_piriod.exceptions import PiriodResponseError
from airflow_provider_piriod.protocol import check_object, follow_next

#: pages a walk may read beyond what the first page's ``count`` allows (objects created meanwhile)
EXTRA_PAGES = 5


def pages_for(count: int, page_size: int) -> int:
    """How many pages ``count`` objects fill (integer arithmetic: a count may be any size)."""
    return -(-count // page_size)


def _error(path: str, what: str) -> PiriodResponseError:
    return PiriodResponseError(f"Piriod GET {path}: {what}", method="GET", path=path)


class PageWalk:
    """Bookkeeping of one list read: ids already yielded, pages already read, and how many pages may come.

    Piriod pages by offset, so an object created during a scan repeats an item on a later page: repeats are
    skipped (and counted). A page that brings nothing new while claiming more, a ``next`` back to a page already
    read (whatever its fragment or parameter order), or more pages than ``count`` allows ends the walk.
    """

    def __init__(
        self, base_url: str, resource_path: str, label: str, secrets: str | Iterable[str] = (), call: Any = None
    ) -> None:
        self.base_url, self.label, self.secrets, self.call = base_url, label, secrets, call
        self.path = urlsplit(base_url).path + resource_path
        self.count: int | None = None
        self.gone: int | None = None  # a page number that answered 404 while pages were read in parallel
        self.seen_pages: set[tuple[str, ...]] = set()
        self.seen_ids: set[str] = set()
        self.yielded = self.duplicates = self.pages = self.max_pages = 0  # max_pages: set by first()

    def first(self, page: dict[str, Any], params: dict[str, str]) -> None:
        """Size the walk from the first page (read with ``params``): what its ``count`` allows, plus a margin."""
        self.mark_read(params)
        self.count, page_size = page["count"], int(params["page_size"])
        per_page = max(1, min(page_size, len(page["results"]) or page_size))
        self.max_pages = pages_for(page["count"], per_page) + EXTRA_PAGES
        if self.call is not None:  # the call's progress lines
            self.call.expect(page["count"], self.max_pages - EXTRA_PAGES)

    def fresh(self, page: dict[str, Any]) -> list[dict[str, Any]]:
        """The objects of ``page`` not yielded before, after checking each is a JSON object."""
        self.pages += 1
        new = []
        for item in page["results"]:
            obj = check_object(item, "GET", self.path)
            key = _id_key(obj.get("id"))
            if key is not None and key in self.seen_ids:
                self.duplicates += 1
                continue
            if key is not None:
                self.seen_ids.add(key)
            new.append(obj)
        self.yielded += len(new)
        if not new and page.get("next"):
            what = (
                f"a page brought no {self.label} not already read but claims more pages; refusing to read without end"
            )
            raise _error(self.path, what)
        if self.call is not None:
            self.call.advance(len(new), pages=1)
        return new

    def next_url(self, page: dict[str, Any] | None) -> str | None:
        """The checked URL of ``page``'s ``next`` link, if it has one and the walk may go on."""
        if page is None or not page.get("next"):
            return None
        url = follow_next(page["next"], self.base_url, self.path, self.secrets)
        key = _query_key(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if key in self.seen_pages:
            raise _error(self.path, "'next' points back to a page already read")
        if self.pages >= self.max_pages:
            raise _error(
                self.path, f"more pages than its count allows ({self.max_pages}); refusing to read without end"
            )
        self.seen_pages.add(key)
        return url

    def mark_read(self, params: dict[str, str]) -> None:
        """Remember a page requested by number, so a ``next`` back to it is recognised."""
        self.seen_pages.add(_query_key(params.items()))

    def short_of_count(self) -> bool:
        """True when the walk ended with fewer objects than the first page's ``count`` promised."""
        return self.count is not None and self.yielded < self.count

    def confirm_shorter(self, fresh_count: int, log: Any) -> None:
        """The walk ended short: fine if a fresh count agrees the list shrank, else a partial list."""
        if fresh_count > self.yielded:
            ended = f"page {self.gone} answered 404" if self.gone else f"the pages ended after {self.yielded}"
            what = f"{ended} although {fresh_count} {self.label}s match; refusing to return a partial list"
            raise _error(self.path, what)
        log.info("Piriod's list at %s shrank from %d to %d while it was read", self.path, self.count, fresh_count)

    def report(self, log: Any) -> None:
        if self.duplicates:
            log.warning(
                "Skipped %d %ss already returned by an earlier page (pages shifted while reading, usually "
                "because objects were created during the scan)",
                *(self.duplicates, self.label),
            )


def _id_key(object_id: Any) -> str | None:
    """Ids compare as text (``12`` and ``"12"`` are one object); unhashable ids are not tracked."""
    return str(object_id) if isinstance(object_id, (str, int)) and not isinstance(object_id, bool) else None


def _query_key(pairs: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """A page's identity: its query parameters in a fixed order (``page=1`` is the page without one)."""
    return tuple(f"{k}={v}" for k, v in sorted(pairs) if not (k == "page" and v == "1"))
