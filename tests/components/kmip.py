"""A real PyKMIP server for the KMIP keystore tests: its own CA, server and client certificates, mutual TLS.

``kmip_server`` (registered for every test by the root conftest's ``pytest_plugins``) is session-scoped: one
``pykmip-server`` process per test session, on a free loopback port, with its SQLite database, policy
directory and log under a pytest tmp dir. It yields ``KmipServer``, whose ``options()`` are ready-made
keystore options for a client holding the valid client certificate.

Why TLS1.2: PyKMIP's default "Basic" auth suite is TLS 1.0 with TLS 1.0 ciphers, which OpenSSL 3 refuses.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

# Test-only certificate generation; the banned-API rule keeps hazmat out of donjon's own code.
from cryptography.hazmat.primitives import hashes, serialization  # noqa: TID251
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: TID251
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PYKMIP_SERVER = str(Path(sys.executable).with_name("pykmip-server"))
CLIENT_CN = "donjon-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class TestCa:
    """A throwaway CA issuing EC P-256 certificates valid for one day."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path, name: str = "donjon-test-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / f"{name}.crt"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, common_name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            # PyKMIP's server takes the client identity from a clientAuth certificate's common name.
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        # Private keys are created 0600 from the start, never briefly world-readable.
        fd = os.open(issued.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        return issued


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class KmipServer:
    directory: Path
    ca: TestCa
    server: Issued
    client: Issued
    port: int
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def options(self, **overrides: Any) -> dict[str, Any]:
        """Keystore options for the valid client certificate, with ``overrides`` applied."""
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "certfile": str(self.client.cert),
            "keyfile": str(self.client.key),
            "ca_certs": str(self.ca.cert),
            "timeout": 10,
        }
        options.update(overrides)
        return options

    def start(self, timeout: float = 30.0) -> KmipServer:
        policies = self.directory / "policies"
        policies.mkdir(exist_ok=True)
        config = self.directory / "server.conf"
        config.write_text(
            "[server]\n"
            "hostname=127.0.0.1\n"
            f"port={self.port}\n"
            f"certificate_path={self.server.cert}\n"
            f"key_path={self.server.key}\n"
            f"ca_path={self.ca.cert}\n"
            "auth_suite=TLS1.2\n"
            f"policy_path={policies}\n"
            "enable_tls_client_auth=True\n"
            # INFO, not DEBUG: at DEBUG PyKMIP logs whole messages, payloads included.
            "logging_level=INFO\n"
            f"database_path={self.directory / 'pykmip.db'}\n"
        )
        started = time.monotonic()
        with (self.directory / "server.stdout").open("ab") as out:
            self.process = subprocess.Popen(
                [PYKMIP_SERVER, "-f", str(config), "-l", str(self.log)],
                stdout=out,
                stderr=out,
                # Its own process group: stop() reaches the server's multiprocessing children too.
                start_new_session=True,
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pykmip-server exited with {self.process.returncode}:\n{self._tail()}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    self.startup_seconds = time.monotonic() - started
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pykmip-server did not listen within {timeout}s:\n{self._tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGKILL for the whole group at once: PyKMIP's SIGTERM handler hangs joining its children (every stop
        # waited out a 5 s grace), and nothing the server holds outlives the test session.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def _tail(self) -> str:
        parts = []
        for path in (self.directory / "server.stdout", self.log):
            if path.exists():
                parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)


# Registered once, by the root conftest: a module that imported the fixture would get its own server.
@pytest.fixture(scope="session", name="kmip_server")
def kmip_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipServer]:
    directory = tmp_path_factory.mktemp("kmip")
    ca = TestCa(directory / "certs")
    server = KmipServer(
        directory=directory,
        ca=ca,
        server=ca.issue("server", "127.0.0.1", server=True),
        client=ca.issue("client", CLIENT_CN, server=False),
        port=_free_port(),
    ).start()
    yield server
    server.stop()
