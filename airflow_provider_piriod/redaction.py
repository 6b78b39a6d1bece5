"""Keep the token out of every text the provider writes: errors, log lines, quoted server answers.

Error text is built from what a server sent (reason phrase, ``detail``, a body's start), so a server
that echoes the token must not be able to put it into a message: :func:`scrub` redacts and caps an
error's message, ``detail`` and field ``errors`` on its way out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from airflow_provider_piriod.exceptions import PiriodError, PiriodValidationError

REDACTED = "***"
#: longest message, ``detail`` and field error kept from a server's answer (a body can be megabytes)
MAX_MESSAGE_CHARS = 1000
MAX_DETAIL_CHARS = 500
MAX_ERROR_CHARS = 300
MAX_ERROR_FIELDS = 50
SNIPPET_CHARS = 120
#: the shortest run of a secret's characters that counts as the secret: a server quoting part of it is redacted too
MIN_PIECE = 8


def secrets_of(secrets: str | Iterable[str]) -> tuple[str, ...]:
    """The non-empty secrets, from one secret or several."""
    return tuple(s for s in ((secrets,) if isinstance(secrets, str) else secrets) if s)


def redact(text: str, secrets: str | Iterable[str]) -> str:
    """``text`` with every secret (and its percent-encoded form) replaced by ``***``, in any letter case, and
    so is every run of ``MIN_PIECE`` or more of its characters (``Invalid token 'tok_4f1c...'``). A secret
    spelled in percent escapes (``%74ok_...``, even escaped twice) is found too: the text is then given decoded."""
    secrets = secrets_of(secrets)
    decoded = text
    for _ in range(2):
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
        if (found := _redacted(decoded, secrets)) != decoded:
            return found
    return _redacted(text, secrets)


def _redacted(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            text = _without(form.lower(), text)
    return text


def _without(secret: str, text: str) -> str:
    """``text`` with each run of ``secret``'s characters (the whole secret, if it is short) made ``***``."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer ("İ"): the others lowered one by one
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    if len(secret) < MIN_PIECE:
        return re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE) if secret in lowered else text
    pieces = {secret[i : i + MIN_PIECE] for i in range(len(secret) - MIN_PIECE + 1)}
    if not any(piece in lowered for piece in pieces):
        return text
    kept, start, i = [], 0, 0
    while i <= len(text) - MIN_PIECE:
        if lowered[i : i + MIN_PIECE] not in pieces:
            i += 1
            continue
        end = i + MIN_PIECE
        while end < len(text) and lowered[i : end + 1] in secret:
            end += 1
        kept += [text[start:i], REDACTED]
        start = i = end
    return "".join([*kept, text[start:]])


def clean(value: Any, secrets: str | Iterable[str], limit: int) -> str:
    """``value`` as text, redacted, then cut to ``limit`` characters."""
    text = redact(str(value), secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def snippet(body: bytes, secrets: str | Iterable[str] = ()) -> str:
    """The start of a body as one line of text; the token is cut out before the text is cut short."""
    secrets = secrets_of(secrets)
    window = body[: SNIPPET_CHARS * 8]
    # NULs dropped first: a UTF-16 page would spell an echoed token "t\0o\0k..." past the redaction
    text = redact(" ".join(window.decode("utf-8", "replace").replace("\0", "").split()), secrets)
    if len(window) < len(body):  # the window may end inside a token: drop a token's length from its end
        text = text[: max(0, len(text) - max(map(len, secrets), default=0))]
    return text[:SNIPPET_CHARS]


def scrub(exc: PiriodError, secrets: str | Iterable[str]) -> PiriodError:
    """Redact and cap the message, ``detail`` and field ``errors`` of ``exc`` in place; returns it."""
    secrets = secrets_of(secrets)
    exc.args = tuple(clean(arg, secrets, MAX_MESSAGE_CHARS) if isinstance(arg, str) else arg for arg in exc.args)
    if exc.detail is not None:
        exc.detail = clean(exc.detail, secrets, MAX_DETAIL_CHARS)
    if isinstance(exc, PiriodValidationError) and isinstance(exc.errors, dict):  # only it carries ``errors``
        exc.errors = {
            clean(field, secrets, MAX_ERROR_CHARS): [clean(m, secrets, MAX_ERROR_CHARS) for m in messages[:10]]
            for field, messages in list(exc.errors.items())[:MAX_ERROR_FIELDS]
        }
    return exc
