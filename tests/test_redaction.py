"""The token, its percent-encoded form and any run of 8 or more of its characters are redacted; nothing else."""

from __future__ import annotations

import pytest

from airflow_provider_piriod.redaction import redact

TOKEN = "tok_4f1c9a0b77e2d3c85e6f1a2b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {TOKEN} refused", "key *** refused"),
        (f"Invalid token '{TOKEN[:16]}...'", "Invalid token '***...'"),
        (f"Invalid token '{TOKEN[:16].upper()}...'", "Invalid token '***...'"),
        # a character whose lower case is two characters long must not shift the match
        (f"İ Invalid token '{TOKEN[:12]}...'", "İ Invalid token '***...'"),
        (f"{TOKEN[:7]} and {TOKEN[8:15]}", f"{TOKEN[:7]} and {TOKEN[8:15]}"),  # shorter runs are no secret
        ("customer cus_123 not found", "customer cus_123 not found"),
        ("".join(f"%{ord(c):02X}" for c in TOKEN), "***"),  # percent-encoded: the text is given decoded
        ("since=2024-01-01T00%3A00 " + "%25" * 3000, "since=2024-01-01T00%3A00 " + "%25" * 3000),  # left as is
    ],
    ids=["whole", "prefix", "prefix in capitals", "dotted capital I", "short runs", "no token", "escaped", "no secret"],
)
def test_the_token_and_any_run_of_8_of_its_characters_are_redacted(text, expected):
    assert redact(text, TOKEN) == expected


def test_a_short_secret_is_redacted_whole_only():
    assert redact("a secret and a SECRET", "secret") == "a *** and a ***"
