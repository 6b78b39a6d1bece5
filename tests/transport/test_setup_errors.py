"""Failures a retry cannot fix end at once and say what to change; the others say whose and how many attempts."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time

import pytest
import requests
import urllib3

from airflow_provider_piriod.exceptions import PiriodConfigError, PiriodConnectionSetupError, PiriodNetworkError
from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
from airflow_provider_piriod.transport.calls import network_error
from tests.hostile import connect_to_a_closed_port


def point_connection_at(monkeypatch: pytest.MonkeyPatch, emulator, host: str, **extra) -> None:
    """``piriod_default`` with the emulator's credentials and another ``host``."""
    conn = {**emulator.connection, "host": host, **({"extra": extra} if extra else {})}
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(conn))


def emulator_address(emulator) -> str:
    return emulator.url.removeprefix("http://")


#: a bound far below any backoff of :func:`slow_backoff` (30 s at least), and far above a loaded machine's delays
AT_ONCE = 10


@pytest.fixture
def slow_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff 30 to 60 s: a call that ends within ``AT_ONCE`` seconds did not back off, however slow the
    machine (the set-up check's second attempt goes out at once)."""
    for hook_class in (PiriodHook, PiriodAsyncHook):
        monkeypatch.setattr(hook_class, "retry_base_delay", 60.0)
        monkeypatch.setattr(hook_class, "retry_max_delay", 120.0)


@pytest.mark.parametrize("form", ["https://{address}", "{address}"])
def test_a_plain_http_server_addressed_as_https_fails_at_once_and_says_how_to_write_the_url(
    piriod_emulator, monkeypatch, form, slow_backoff
):
    """A bare host or an https URL to the emulator: one attempt, no backoff, and the http:// form to use."""
    address = emulator_address(piriod_emulator)
    point_connection_at(monkeypatch, piriod_emulator, form.format(address=address))
    started = time.monotonic()
    with pytest.raises(PiriodConnectionSetupError) as excinfo:
        PiriodHook().count_customers()
    assert time.monotonic() - started < AT_ONCE  # one backoff would wait 30 s at least
    message = str(excinfo.value)
    assert f"answered in plain http where https was expected; write the API URL as http://{address}" in message
    assert f"@{address}/http" in message  # the URI form
    assert "connection 'piriod_default': 2 attempts failed the same way, not retried further" in message
    assert piriod_emulator.token not in message
    assert isinstance(excinfo.value, PiriodConfigError)  # a connection to fix, not an outage to wait out


def test_the_async_hook_recognises_a_plain_http_server_too(piriod_emulator, monkeypatch, slow_backoff):
    """The httpx transport gives the same error, at once."""
    address = emulator_address(piriod_emulator)
    point_connection_at(monkeypatch, piriod_emulator, address)

    async def count() -> int:
        async with PiriodAsyncHook() as hook:
            return await hook.count_customers()

    started = time.monotonic()
    with pytest.raises(PiriodConnectionSetupError, match=f"write the API URL as http://{address}"):
        asyncio.run(count())
    assert time.monotonic() - started < AT_ONCE


def test_the_hint_for_a_non_loopback_host_names_allow_insecure_http():
    """Plain http to another host needs the extra as well: the hint says so."""
    tls_error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls_error.reason = "WRONG_VERSION_NUMBER"  # as OpenSSL fills it in
    wrapped = requests.exceptions.SSLError(urllib3.exceptions.SSLError(tls_error))  # as requests wraps it
    error = network_error("GET", "/customers/", wrapped, base_url="https://billing.example.com:8080")
    assert isinstance(error, PiriodConnectionSetupError)
    assert "write the API URL as http://billing.example.com:8080" in str(error)
    assert "allow_insecure_http=true" in str(error)


@pytest.mark.parametrize(
    ("code", "setup_error"),
    [("EAI_NONAME", True), ("EAI_AGAIN", False)],
)
def test_only_a_name_that_does_not_exist_is_a_setup_error(code, setup_error):
    """A name that is not known will not change on a retry; a temporary failure in name resolution may."""
    cause = socket.gaierror(getattr(socket, code), "resolver says no")
    try:
        raise urllib3.exceptions.NameResolutionError("api.piriod.test", None, cause) from cause
    except urllib3.exceptions.NameResolutionError as exc:
        error = network_error(
            "GET", "/customers/", requests.exceptions.ConnectionError(exc), base_url="https://nx.test"
        )
    assert isinstance(error, PiriodConnectionSetupError) is setup_error
    if setup_error:
        assert "the host name 'nx.test' does not resolve" in str(error)


def test_a_host_that_does_not_resolve_fails_without_retries(monkeypatch, slow_backoff):
    """A real lookup of a reserved ``.invalid`` name; skipped where the machine has no resolver to say no."""
    try:
        socket.getaddrinfo("piriod-provider-test.invalid", 443)
    except socket.gaierror as exc:
        if exc.errno not in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            pytest.skip(f"this machine's resolver cannot answer ({exc})")
    conn = {"conn_type": "piriod", "host": "piriod-provider-test.invalid", "login": "acc_1", "password": "tok"}
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    with pytest.raises(PiriodConnectionSetupError, match=r"'piriod-provider-test\.invalid' does not resolve"):
        PiriodHook().count_customers()
    assert time.monotonic() - started < AT_ONCE


def test_a_network_error_after_retries_names_the_connection_and_the_attempts(monkeypatch, fast_retries):
    """Connection refused is worth retrying; when the retries are spent the message says whose and how many."""
    connect_to_a_closed_port(monkeypatch, "billing", max_retries=2)
    with pytest.raises(PiriodNetworkError) as excinfo:
        PiriodHook("billing").count_customers()
    assert not isinstance(excinfo.value, PiriodConnectionSetupError)
    assert "(connection 'billing': 3 attempts, max_retries = 2)" in str(excinfo.value)


def test_a_sensor_fails_at_once_instead_of_waiting_for_a_misaddressed_server(piriod_emulator, monkeypatch):
    """A sensor treats outages as "not yet"; a connection that can never work fails the task on the first poke."""
    from airflow_provider_piriod.compat import AirflowFailException
    from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor

    point_connection_at(monkeypatch, piriod_emulator, emulator_address(piriod_emulator))
    sensor = PiriodCustomerSensor(task_id="wait", customer_id=piriod_emulator.customers()[0]["id"])
    with pytest.raises(AirflowFailException, match="answered in plain http where https was expected"):
        sensor.poke({})


def server_context(tmp_path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate for 127.0.0.1 (``tmp_path/cert.pem``)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.fixture
def tls_server_with_an_unknown_certificate(tmp_path):
    """A loopback TLS server whose self-signed certificate no CA bundle trusts; yields its ``127.0.0.1:port``."""
    import threading

    context = server_context(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            client.settimeout(2)
            try:
                with context.wrap_socket(client, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass  # the client refuses the certificate: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def test_a_refused_certificate_fails_at_once_in_both_hooks(
    tls_server_with_an_unknown_certificate, monkeypatch, slow_backoff
):
    """Certificate verification will fail the same way on every retry: one attempt, and what to check."""
    address = tls_server_with_an_unknown_certificate
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    conn = {"conn_type": "piriod", "host": f"https://{address}", "login": "acc_1", "password": "tok-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    with pytest.raises(PiriodConnectionSetupError, match=f"the TLS certificate of {address} was not accepted"):
        PiriodHook().count_customers()

    async def count() -> int:
        async with PiriodAsyncHook() as hook:
            return await hook.count_customers()

    with pytest.raises(PiriodConnectionSetupError, match="REQUESTS_CA_BUNDLE"):
        asyncio.run(count())
    assert time.monotonic() - started < AT_ONCE  # both hooks, no backoff in either


def test_the_hint_for_an_https_url_without_a_port_keeps_port_443():
    """https://localhost answered in plain http on 443: the advice keeps :443, since http://localhost means port 80."""
    tls_error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls_error.reason = "WRONG_VERSION_NUMBER"
    wrapped = requests.exceptions.SSLError(urllib3.exceptions.SSLError(tls_error))
    error = network_error("GET", "/customers/", wrapped, base_url="https://localhost")
    assert "write the API URL as http://localhost:443 " in str(error)


@pytest.mark.parametrize("proxy", ["https://{address}", "http://user:proxy-secret@proxy.invalid:3128"])
@pytest.mark.parametrize("hook", ["sync", "async"])
def test_a_proxy_that_cannot_work_is_named_and_the_api_host_is_not_blamed(piriod_emulator, monkeypatch, proxy, hook):
    """HTTPS_PROXY to a plain http port written as https://, or a proxy name that does not resolve: it is named."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps({**piriod_emulator.connection, "host": "https://api.piriod.com"})
    )
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.format(address=emulator_address(piriod_emulator)))

    async def count() -> int:
        async with PiriodAsyncHook() as async_hook:
            return await async_hook.count_customers()

    with pytest.raises(PiriodConnectionSetupError) as excinfo:
        PiriodHook().count_customers() if hook == "sync" else asyncio.run(count())
    message = str(excinfo.value)
    assert "the proxy http" in message and "HTTPS_PROXY" in message and "NO_PROXY" in message
    assert "proxy-secret" not in message and "user:" not in message
    assert "http://api.piriod.com" not in message and "allow_insecure_http" not in message


@pytest.fixture
def glitching_tls_server(tmp_path, monkeypatch):
    """A trusted loopback TLS server of two one-customer pages; the requests numbered in ``glitches`` get plain
    bytes written under the finished TLS session (as a corrupting middlebox would). Yields ``(url, glitches)``."""
    import os
    import threading

    context = server_context(tmp_path)
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(variable, str(tmp_path / "cert.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"https://127.0.0.1:{listener.getsockname()[1]}"
    glitches: set[int] = set()
    requests_seen = [0]

    def answer(tls: ssl.SSLSocket) -> None:
        while True:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                head += chunk
            requests_seen[0] += 1
            if requests_seen[0] in glitches:
                os.write(tls.fileno(), b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")  # not a TLS record
                time.sleep(0.1)
                return
            page = 2 if b"page=2" in head.split(b"\r\n")[0] else 1
            following = None if page == 2 else f"{url}/customers/?page=2&page_size=1"
            body = json.dumps(
                {"count": 2, "next": following, "previous": None, "results": [{"id": f"cus_{page}", "name": "x"}]}
            ).encode()
            head_out = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            tls.sendall(head_out.encode() + body)

    def serve(client: socket.socket) -> None:
        try:
            with context.wrap_socket(client, server_side=True) as tls:
                answer(tls)
        except (OSError, ssl.SSLError):
            pass
        finally:
            client.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    conn = {"conn_type": "piriod", "host": url, "login": "acc_1", "password": "tok-secret", "extra": {"max_retries": 3}}
    monkeypatch.setenv("AIRFLOW_CONN_PIRIOD_DEFAULT", json.dumps(conn))
    yield url, glitches
    listener.close()


def test_a_corrupted_answer_after_a_page_came_through_is_retried(glitching_tls_server, fast_retries):
    """Page 1 arrived over TLS, page 2's answer is corrupted once: a transient failure, retried; the walk ends."""
    _, glitches = glitching_tls_server
    glitches.add(2)
    ids = [item["id"] for item in PiriodHook().iter_object_json("customers", {}, page_size=1, max_workers=1)]
    assert ids == ["cus_1", "cus_2"]


@pytest.mark.parametrize("hook", ["sync", "async"])
def test_one_corrupted_first_answer_is_not_a_setup_error(glitching_tls_server, fast_retries, hook):
    """The first answer corrupted once (not a plain http server: the retry speaks TLS fine): the call succeeds."""
    _, glitches = glitching_tls_server
    glitches.add(1)

    async def count() -> int:
        async with PiriodAsyncHook() as async_hook:
            return await async_hook.count_customers()

    assert (PiriodHook().count_customers() if hook == "sync" else asyncio.run(count())) == 2


def test_a_sensor_waits_through_one_corrupted_answer(glitching_tls_server, fast_retries):
    """A sensor poke that meets one corrupted TLS answer pokes on instead of failing the task."""
    from airflow_provider_piriod.sensors.piriod import PiriodSensor

    _, glitches = glitching_tls_server
    glitches.add(1)
    sensor = PiriodSensor(task_id="wait", resource="customers", filters={"country": "CL"}, min_count=5)
    assert not sensor.poke({}).is_done
