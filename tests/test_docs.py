"""docs/reliability.md names only tests that exist, so every row stays backed by a test."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def referenced_tests() -> list[tuple[str, str]]:
    """``(file, name pattern)`` for every `tests/...::name` and the `::name` shorthands after it."""
    refs, current = [], None
    for code in re.findall(r"`([^`]+)`", (ROOT / "docs" / "reliability.md").read_text()):
        match = re.fullmatch(r"(tests/[\w/]+\.py)?(?:::([\w*]+)(?:\[.*\])?)?", code)
        if not match or not (match.group(1) or match.group(2)):
            continue
        current = match.group(1) or current
        refs.append((current, match.group(2) or "*"))
    return refs


def test_every_referenced_test_exists():
    refs = referenced_tests()
    assert len(refs) > 40
    missing = []
    for file, pattern in refs:
        source = (ROOT / file).read_text()
        names = re.findall(r"^def (test_\w+)", source, re.M)
        if not fnmatch.filter(names, pattern):
            missing.append(f"{file}::{pattern}")
    assert missing == []
