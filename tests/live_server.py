"""A real ``donjon server`` process for tests that drive the API with real clients over HTTP."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from donjon.config import Settings
from donjon.storage.database import Database
from donjon.storage.tables import secrets
from donjon.timeutil import utcnow

DONJON = str(Path(sys.executable).with_name("donjon"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    # False: the auth mode comes from env/args (e.g. DONJON_AUTH=keystone) instead of --dev.
    dev: bool = True
    process: subprocess.Popen[bytes] | None = None
    # Set for a server with TLS (tls.* in env): how the tests' clients verify it.
    tls_client: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_client else 'http'}://127.0.0.1:{self.port}"

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        if self.tls_client is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls_client)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout: float = 30.0) -> LiveServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
        env.update(self.env)
        command = [DONJON, "server", *(["--dev"] if self.dev else []), "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        command += ["--data-dir", str(self.data_dir), *self.args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"donjon exited with {self.process.returncode}:\n{self.log.read_text()}")
            if self.answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"donjon did not answer within {timeout}s:\n{self.log.read_text()}")

    def answers(self) -> bool:
        try:
            conn = self.connection(timeout=2)
            conn.request("GET", "/")
            ok = conn.getresponse().status == 300
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)  # the supervisor and its worker processes
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(15)

    def kill(self) -> None:
        """A crash: SIGKILL to every process of the server, no chance to clean up."""
        self.stop(signal.SIGKILL)

    @property
    def database_url(self) -> str:
        """The server's database: DONJON_DATABASE_URL when given, else the SQLite file in its data dir."""
        # model_construct: the default path alone, not this test process's own DONJON_* environment.
        default = Settings.model_construct(data_dir=self.data_dir).effective_database_url
        return self.env.get("DONJON_DATABASE_URL") or default

    def expire_now(self, secret_id: str) -> None:
        """Move a secret's expiration to just past, in the server's database.

        A server process reads the machine's clock, which a test cannot move: rather than sleep until an
        expiration passes, the test brings the expiration to the clock. What the server does with an
        expired secret (404, out of lists, reaped) is the same either way.
        """
        expire_in_database(self.database_url, secret_id)


def expire_in_database(database_url: str, secret_id: str) -> None:
    """Move a secret's expiration to just past, in the database at ``database_url`` (``expire_now``)."""
    db = Database(database_url, pool_size=1)
    try:
        with db.write() as conn:
            past = utcnow() - timedelta(seconds=1)
            changed = conn.execute(update(secrets).where(secrets.c.id == secret_id).values(expiration=past))
            assert changed.rowcount == 1, f"no secret {secret_id} in {database_url}"
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live")).start()
    yield server
    server.stop()
