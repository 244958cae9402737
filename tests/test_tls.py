"""``donjon server`` over TLS (issue 13, item 1), with real handshakes against the real executable: TLS 1.2+,
certificate reload on SIGHUP without dropping connections, mutual TLS; and the listener's refusals and
messages (item 10): plain HTTP with tokens on the network, https:// against the plain server, a port in use."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from donjon import listener
from donjon.config import Settings, TlsConfig
from donjon.errors import ConfigurationError
from donjon.listener.plain import HINT
from donjon.listener.tls import server_context
from tests.live_server import DONJON, LiveServer, free_port
from tests.tls_certs import Issued, TestCA

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def client_context(ca: TestCA, cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    if cert is not None:
        context.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    return context


def tls_env(pair: Issued, **extra: str) -> dict[str, str]:
    return {"DONJON_TLS__CERT_FILE": str(pair.cert_file), "DONJON_TLS__KEY_FILE": str(pair.key_file), **extra}


def peer_cert(conn: http.client.HTTPSConnection) -> bytes:
    assert isinstance(conn.sock, ssl.SSLSocket)
    der = conn.sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def get_root(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/")
    response = conn.getresponse()
    response.read()
    return response.status


def run_server(*args: str, env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``donjon server`` expected to refuse to start: its exit status and output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")} | env
    command = [DONJON, "server", "--data-dir", str(data_dir), *args]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("workers", [1, 2])
def test_https_and_a_certificate_reloaded_on_sighup_without_dropping_connections(
    ca: TestCA, tmp_path: Path, workers: int
) -> None:
    first, second = ca.issue(f"first-{workers}"), ca.issue(f"second-{workers}")
    served = Issued(tmp_path / "server.crt", tmp_path / "server.key")
    served.cert_file.write_bytes(first.cert_file.read_bytes())
    served.key_file.write_bytes(first.key_file.read_bytes())
    server = LiveServer(tmp_path / "data", workers=workers, env=tls_env(served), tls_client=client_context(ca))
    server.start()
    try:
        kept = server.connection()
        assert get_root(kept) == 300
        assert isinstance(kept, http.client.HTTPSConnection) and peer_cert(kept) == first.der

        # The operator replaces the files (atomically, as a deployment tool does) and sends SIGHUP.
        for source, target in ((second.key_file, served.key_file), (second.cert_file, served.cert_file)):
            staged = target.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            staged.replace(target)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)

        # New connections get the new certificate (every worker: several connections, spread over them).
        deadline, seen = time.monotonic() + 30, set()
        while time.monotonic() < deadline and seen != {second.der}:
            seen = set()
            for _ in range(4 * workers):
                conn = server.connection()
                # The certificate before the answer: an answer may close the connection, to even out the
                # workers' keep-alive connections (donjon.connection_balance).
                conn.connect()
                seen.add(peer_cert(conn))  # type: ignore[arg-type]
                assert get_root(conn) == 300
                conn.close()
            time.sleep(0.2)
        assert seen == {second.der}
        # The connection opened before the reload still works, on its original session.
        assert get_root(kept) == 300 and peer_cert(kept) == first.der
        kept.close()
        assert "TLS certificate reloaded" in server.log.read_text()
    finally:
        server.stop()


def test_a_broken_new_certificate_leaves_the_old_one_served(ca: TestCA, tmp_path: Path) -> None:
    first, other = ca.issue("kept"), ca.issue("other")
    served = Issued(tmp_path / "server.crt", tmp_path / "server.key")
    served.cert_file.write_bytes(first.cert_file.read_bytes())
    served.key_file.write_bytes(first.key_file.read_bytes())
    server = LiveServer(tmp_path / "data", workers=1, env=tls_env(served), tls_client=client_context(ca)).start()
    try:
        served.cert_file.write_bytes(other.cert_file.read_bytes())  # a certificate without its key
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "TLS certificate not reloaded" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "TLS certificate not reloaded" in server.log.read_text()
        conn = server.connection()
        assert isinstance(conn, http.client.HTTPSConnection)
        assert get_root(conn) == 300 and peer_cert(conn) == first.der
        conn.close()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mtls_server(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    pair = ca.issue("mtls-server")
    client = ca.issue("mtls-client", client=True)
    env = tls_env(pair, DONJON_TLS__CLIENT_CA_FILE=str(ca.cert_file))
    server = LiveServer(tmp_path_factory.mktemp("mtls"), workers=1, env=env, tls_client=client_context(ca, client))
    yield server.start()
    server.stop()


def test_mutual_tls_accepts_a_client_certificate_from_the_ca(mtls_server: LiveServer) -> None:
    conn = mtls_server.connection()
    assert get_root(conn) == 300
    conn.close()


def test_python_barbicanclient_over_mutual_tls_gets_https_refs(mtls_server: LiveServer, ca: TestCA) -> None:
    """An unmodified client, as Castellan builds it: a keystoneauth session with the CA and a client certificate."""
    from barbicanclient import client as barbican
    from keystoneauth1 import session as ks_session

    cert = (str(ca.directory / "mtls-client.crt"), str(ca.directory / "mtls-client.key"))
    session = ks_session.Session(verify=str(ca.cert_file), cert=cert)
    c = barbican.Client(session=session, endpoint=mtls_server.url, project_id="tls-project")
    ref = c.secrets.create(name="over-tls", payload="s3cr3t over TLS").store()
    assert ref.startswith(f"https://127.0.0.1:{mtls_server.port}/v1/secrets/")
    assert c.secrets.get(ref).payload == "s3cr3t over TLS"
    c.secrets.delete(ref)


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_server: LiveServer, ca: TestCA) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", mtls_server.port, timeout=10, context=client_context(ca))
    # TLS 1.3 checks the client's certificate after the handshake: the refusal comes with the first read.
    with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
        get_root(conn)
    if isinstance(refused.value, ssl.SSLError):
        assert "CERTIFICATE_REQUIRED" in str(refused.value.reason) or "HANDSHAKE_FAILURE" in str(refused.value.reason)


def test_mutual_tls_refuses_a_certificate_from_another_ca(mtls_server: LiveServer, ca: TestCA, tmp_path: Path) -> None:
    stranger = TestCA(tmp_path, "another CA").issue("stranger", client=True)
    context = client_context(ca, stranger)
    conn = http.client.HTTPSConnection("127.0.0.1", mtls_server.port, timeout=10, context=context)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get_root(conn)


def test_tls_1_1_is_refused_and_1_2_accepted(mtls_server: LiveServer, ca: TestCA) -> None:
    client = mtls_server.tls_client
    assert client is not None
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(ca.cert_file))
    # This client would speak TLS 1.1 (level 0 lets OpenSSL 3 offer it): the server must be what refuses it.
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1 is: that is the point
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", mtls_server.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            old.wrap_socket(raw, server_hostname="127.0.0.1")
    # Not NO_PROTOCOLS_AVAILABLE (the client refusing itself): its TLS 1.1 hello went out and the server
    # answered with an alert or hung up (asyncio closes a failed handshake without flushing the alert).
    assert refused.value.reason in {"TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING"}, refused.value
    tls12 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls12.load_verify_locations(str(ca.cert_file))
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.load_cert_chain(str(ca.directory / "mtls-client.crt"), str(ca.directory / "mtls-client.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", mtls_server.port, timeout=10, context=tls12)
    assert get_root(conn) == 300
    assert isinstance(conn.sock, ssl.SSLSocket) and conn.sock.version() == "TLSv1.2"
    conn.close()


def test_tls_1_2_offers_forward_secret_aead_suites_only(ca: TestCA) -> None:
    pair = ca.issue("ciphers")
    names = {
        c["name"] for c in server_context(TlsConfig(cert_file=pair.cert_file, key_file=pair.key_file)).get_ciphers()
    }
    assert names and all(("GCM" in n or "CHACHA20" in n) for n in names), names
    assert all(n.startswith(("TLS_", "ECDHE-", "DHE-")) for n in names), names


def test_sighup_without_tls_leaves_a_single_worker_serving(plain_server: LiveServer) -> None:
    assert plain_server.process is not None
    os.kill(plain_server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "nothing to reload without TLS" not in plain_server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "nothing to reload without TLS" in plain_server.log.read_text()
    assert plain_server.process.poll() is None and plain_server.answers()


# ---- refusals at start ----


def test_token_mode_on_the_network_without_tls_refuses_to_start(tmp_path: Path) -> None:
    everywhere = "0.0.0.0"  # noqa: S104 - the point of the test
    env = {"DONJON_AUTH": "token"}
    result = run_server("--host", everywhere, "--port", str(free_port()), env=env, data_dir=tmp_path)
    assert result.returncode != 0
    assert "without TLS would send tokens in clear" in result.stderr
    assert "tls.behind_proxy" in result.stderr and "Traceback" not in result.stderr


def test_token_mode_on_the_network_with_tls_starts(ca: TestCA, tmp_path: Path) -> None:
    env = tls_env(ca.issue("network"), DONJON_AUTH="token")
    everywhere = "0.0.0.0"  # noqa: S104 - the point of the test
    server = LiveServer(tmp_path, workers=1, dev=False, env=env, args=["--host", everywhere])
    server.tls_client = client_context(ca)
    server.start()
    try:
        conn = server.connection()
        conn.request("GET", "/v1/secrets")
        response = conn.getresponse()
        assert response.status == 401 and json.loads(response.read())["code"] == 401  # a token is needed
        conn.close()
        assert f"serving on https://0.0.0.0:{server.port}" in server.log.read_text()
    finally:
        server.stop()


@pytest.mark.parametrize("auth", ["token", "keystone"])
def test_plain_http_with_credentials_is_refused_off_loopback_only(auth: str, tmp_path: Path) -> None:
    def settings(host: str, **tls: object) -> Settings:
        return Settings(auth=auth, host=host, data_dir=tmp_path, tls=TlsConfig(**tls))  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError, match=f"auth={auth} on 192.0.2.10 without TLS"):
        listener.check_transport(settings("192.0.2.10"))
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert listener.check_transport(settings(loopback)) is None
    note = listener.check_transport(settings("192.0.2.10", behind_proxy=True))
    assert note is not None and "TLS-terminating proxy" in note
    # dev mode trusts headers: its own check (loopback only) applies, with or without TLS.
    assert listener.check_transport(Settings(auth="dev", host="192.0.2.10", data_dir=tmp_path)) is None


def test_behind_a_proxy_token_mode_serves_plain_http_and_says_so(tmp_path: Path) -> None:
    env = {"DONJON_AUTH": "token", "DONJON_TLS__BEHIND_PROXY": "true"}
    server = LiveServer(tmp_path, workers=1, dev=False, env=env, args=["--host", "0.0.0.0"])  # noqa: S104
    server.start()
    try:
        assert "tls.behind_proxy says a TLS-terminating proxy is in front" in server.log.read_text()
    finally:
        server.stop()


def test_an_unreadable_certificate_is_one_clear_message(tmp_path: Path) -> None:
    env = {"DONJON_TLS__CERT_FILE": str(tmp_path / "missing.crt")}
    result = run_server("--dev", "--port", str(free_port()), env=env, data_dir=tmp_path)
    assert result.returncode != 0
    assert f"tls.cert_file {tmp_path / 'missing.crt'}" in result.stderr and "Traceback" not in result.stderr


def test_an_encrypted_key_is_refused_without_prompting(ca: TestCA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    pair = ca.issue("encrypted")
    key = serialization.load_pem_private_key(pair.key_file.read_bytes(), None)
    pair.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    result = run_server("--dev", "--port", str(free_port()), env=tls_env(pair), data_dir=tmp_path)
    assert result.returncode != 0
    assert "tls.key_file is encrypted" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server("--dev", "--port", str(port), env={}, data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: port {port} on 127.0.0.1 is already in use (another donjon server?): stop that process, "
        "or listen on another port with --port or DONJON_PORT"
    )
    assert "Traceback" not in result.stderr


# ---- https:// against the plain server ----


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("plain"), workers=1)
    yield server.start()
    server.stop()


def client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl), as an https:// URL would send it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_tls_handshake_to_the_plain_server_is_told_to_use_http(plain_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", plain_server.port), timeout=10) as sock:
        sock.sendall(client_hello())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request")
    assert json.loads(body) == {"code": 400, "title": "Bad Request", "description": HINT}
    assert "use an http:// URL" in HINT
    # What an https:// client sees is an SSL error; the server's log is where the user reads what to do.
    assert "a TLS handshake from" in plain_server.log.read_text()
    assert "use an http:// URL, or enable TLS on the server" in plain_server.log.read_text()


def test_https_client_against_the_plain_server_fails_and_http_still_works(plain_server: LiveServer) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", plain_server.port, timeout=10, context=ssl.create_default_context())
    with pytest.raises(ssl.SSLError):
        get_root(conn)
    assert get_root(plain_server.connection()) == 300
