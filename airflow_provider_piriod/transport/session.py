"""The settings in effect for one hook's requests: headers, token, proxy and CA bundle, read once, held by the
``requests.Session`` that ``get_conn()`` returns (as users of Airflow hooks expect); requests go out through
urllib3 pools built from that session as the first request is sent (:class:`Route`), to the configured origin only.
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.utils import requote_uri

from airflow_provider_piriod import __version__
from airflow_provider_piriod.connection import PiriodSettings
from airflow_provider_piriod.exceptions import PiriodConfigError, PiriodError
from airflow_provider_piriod.protocol import MAX_WORKERS
from airflow_provider_piriod.transport.attempt import ACCEPT_ENCODING, WATCHED_POOLS


class TokenAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Token ...`` at send time (and stops requests from reading ~/.netrc)."""

    def __init__(self, authorization: str) -> None:
        self._authorization = authorization

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._authorization
        return request

    def __repr__(self) -> str:
        return "<TokenAuth ***>"


def build_session(settings: PiriodSettings) -> requests.Session:
    """The pooled session: Piriod's headers and token, and the environment's proxy and CA bundle read once."""
    session = requests.Session()
    session.headers.update(settings.headers)
    session.headers.update({"User-Agent": f"airflow-provider-piriod/{__version__}", "Accept-Encoding": ACCEPT_ENCODING})
    session.auth = TokenAuth(settings.authorization)
    session.trust_env = False  # else requests reads every *_proxy variable (twice) on each request
    # no proxy for a plain-http API unless allowed: the token would cross it in clear text
    if settings.base_url.startswith("https://") or settings.allow_insecure_http:
        proxy = requests.utils.select_proxy(settings.base_url, requests.utils.get_environ_proxies(settings.base_url))
        session.proxies = {urlsplit(settings.base_url).scheme: proxy} if proxy else {}
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=MAX_WORKERS, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Route:
    """Where a hook's requests go: urllib3's pools for the configured origin, or its proxy; nowhere else.
    Built from the session once, as the first request goes out: its headers are merged and checked once."""

    def __init__(self, settings: PiriodSettings, session: requests.Session) -> None:
        origin = urlsplit(settings.base_url)
        self._origin = (origin.scheme, origin.netloc)
        checked = requests.PreparedRequest()
        checked.prepare_headers({**session.headers, "Authorization": settings.authorization})  # no CR/LF
        self.headers = {name: str(value) for name, value in checked.headers.items()}
        self.manager = _manager(session)
        self.server_date: str | None = None  #: the Date header of the last answer (Piriod's clock)

    def open(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float, params: Any = None
    ) -> Any:
        """Send one request to the configured origin only; the answer's body is left unread, raw."""
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}" if params else url  # as requests encodes them
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise PiriodError(f"Piriod request to {parts.path}: not sent, it is not on the configured origin")
        answer = self.manager.urlopen(
            method,
            requote_uri(url),  # quoted as requests would quote it
            body=body,
            headers={**self.headers, **headers} if headers else self.headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )
        self.server_date = answer.headers.get("Date")
        return answer


def _manager(session: requests.Session) -> urllib3.PoolManager:
    """A PoolManager (or ProxyManager for the session's proxy) whose every connection is watched by the deadline."""
    bundle = requests.certs.where() if session.verify is True else str(session.verify)  # as requests would
    context = (
        ssl.create_default_context(capath=bundle)
        if os.path.isdir(bundle)
        else ssl.create_default_context(cafile=bundle)
    )
    options: dict[str, Any] = {"num_pools": 2, "maxsize": MAX_WORKERS, "block": False, "ssl_context": context}
    proxy = next(iter(session.proxies.values()), None)
    if proxy is None:
        manager = urllib3.PoolManager(**options)
    elif urlsplit(proxy).scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise PiriodConfigError(
                "a SOCKS proxy is set in the environment; install PySocks (pip install 'requests[socks]')"
            ) from None
        return SOCKSProxyManager(proxy, **options)  # its own pools: per-read timeouts only
    else:
        proxy_headers = requests.adapters.HTTPAdapter().proxy_headers(proxy)  # Proxy-Authorization from userinfo
        manager = urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **options)
    manager.pool_classes_by_scheme = dict(WATCHED_POOLS)
    return manager
