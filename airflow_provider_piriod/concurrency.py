"""Work over many items a bounded number at a time, stopping at the first failure: the one mechanism the
transport's parallel reads and the operators' batches of writes and lookups share."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, name: str, stop: threading.Event | None = None
) -> Generator[R, None, None]:
    """``fn`` over ``items`` in order, ``workers`` at a time, at most ``2 * workers`` ahead: so the first failure
    stops the rest (nothing beyond the window is sent, what is queued is cancelled, and ``stop`` is set)."""
    if workers == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        window: deque[Future[R]] = deque()
        queued = iter(items)
        try:
            window.extend(pool.submit(fn, item) for item in islice(queued, 2 * workers))
            while window:
                result = window.popleft().result()
                window.extend(pool.submit(fn, item) for item in islice(queued, 1))
                yield result
        finally:
            if window and stop is not None:
                stop.set()
            for future in window:
                future.cancel()
