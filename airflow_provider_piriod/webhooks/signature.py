"""The ``x-piriod-signature`` of a webhook delivery: what Piriod signs, and the constant-time check.

Documented by Piriod: HMAC-SHA256, hex, keyed with the webhook's secret (``whsecret_...``), sent in
``x-piriod-signature``. Inferred from Piriod's only sample, which concatenates the payload's values:
the signed message is the payload's values as text, in the order the payload lists them, with no
separator. That inference lives in :func:`signed_message` alone, so a correction is one function.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any


def signed_message(payload: Mapping[str, Any]) -> bytes:
    """The bytes Piriod signs for ``payload`` (inferred: see the module docstring)."""
    return "".join(str(value) for value in payload.values()).encode("utf-8")


def signature(secret: str, payload: Mapping[str, Any]) -> str:
    """The hex HMAC-SHA256 of the payload under ``secret``: what a genuine delivery carries."""
    return hmac.new(secret.encode("utf-8"), signed_message(payload), hashlib.sha256).hexdigest()


def is_authentic(secret: str, payload: Mapping[str, Any], header: str | None) -> bool:
    """Whether ``header`` is the payload's signature under ``secret``, compared in constant time."""
    if not secret or not header:
        return False
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(signature(secret, payload).encode("ascii"), given)
