"""Typed errors raised by the Piriod provider.

Every error says which request failed (method, path, status) and what Piriod said (``detail``,
field errors), so a person can act on it and a retry policy can branch on the type. Messages
never contain the API token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from airflow_provider_piriod.compat import AirflowException


class PiriodError(AirflowException):
    """Base class: a Piriod request failed or could not be made."""

    # Piriod's HTTP status (any int, or None before an answer), not Airflow's HTTPStatus for its own API
    status_code: int | None  # type: ignore[assignment]

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.method = method
        self.path = path


class PiriodAuthError(PiriodError):
    """The token or workspace was refused (401, 403, or 400 about the workspace header)."""


class PiriodNotFoundError(PiriodError):
    """404: no such object in this workspace and mode (live or test)."""


class PiriodValidationError(PiriodError):
    """400: Piriod rejected the request; ``errors`` maps each field to its messages."""

    def __init__(self, message: str, *, errors: Mapping[str, Sequence[str]] | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}


class PiriodRateLimitError(PiriodError):
    """429: too many requests; ``retry_after`` is Piriod's advice in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PiriodServerError(PiriodError):
    """5xx: Piriod (or a proxy in front of it) failed; ``retry_after`` if it said when to come back."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PiriodResponseError(PiriodError):
    """The answer could not be used: undecodable, too large, a redirect, or not the documented shape."""


class PiriodNetworkError(PiriodError):
    """No usable answer arrived: connection refused or dropped, or the request deadline passed.

    ``request_sent`` says whether the whole request had left: if it had, Piriod may have acted on it.
    """

    def __init__(self, message: str, *, request_sent: bool = False, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.request_sent = request_sent


class PiriodAmbiguousWriteError(PiriodError):
    """A create or an action left whole but no usable answer came back (lost, late, or a 5xx): it may have
    taken effect. It is never resent blindly; the hook looks the object up to decide."""


class PiriodInputError(PiriodError, ValueError):
    """An argument is invalid; raised before any request is sent."""


class PiriodConfigError(PiriodError, ValueError):
    """The Airflow connection is incomplete or invalid; raised before any request is sent."""


class PiriodConnectionSetupError(PiriodConfigError):
    """Connecting cannot work as configured: the host name does not resolve, or TLS cannot be agreed.

    Raised once a second attempt failed the same way, before any answer of the call arrived (after one,
    the same failure is an ordinary, retried network error); sensors and triggers fail at once.
    """

    def __init__(self, message: str, *, as_network_error: PiriodNetworkError | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        #: the same failure told as a transient one: what a call raises when an answer already came through
        self.as_network_error = as_network_error
