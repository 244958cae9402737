"""The server as a process: concurrent writes across workers, start-up refusals, CLI (crashes: test_crash.py)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import stat
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.live_server import DONJON, LiveServer

pytestmark = pytest.mark.live


def request(
    server: LiveServer,
    method: str,
    path: str,
    project: str,
    body: dict[str, object] | None = None,
    accept: str = "application/json",
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"X-Project-Id": project, "Accept": accept}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    try:
        conn.request(method, path, data, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def store(server: LiveServer, project: str, payload: bytes) -> tuple[int, str]:
    status, body = request(
        server,
        "POST",
        "/v1/secrets",
        project,
        {
            "payload": base64.b64encode(payload).decode(),
            "payload_content_type": "application/octet-stream",
            "payload_content_encoding": "base64",
        },
    )
    ref = json.loads(body)["secret_ref"] if status == 201 else ""
    return status, ref.rsplit("/", 1)[-1]


def read(server: LiveServer, project: str, secret_id: str) -> bytes:
    status, body = request(
        server, "GET", f"/v1/secrets/{secret_id}/payload", project, accept="application/octet-stream"
    )
    assert status == 200
    return body


def test_concurrent_writes_across_workers_all_succeed(live_server: LiveServer) -> None:
    project = f"conc-{uuid.uuid4()}"
    payloads = [os.urandom(32) for _ in range(320)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda p: store(live_server, project, p), payloads))
    assert [status for status, _ in results] == [201] * len(payloads)
    with ThreadPoolExecutor(16) as pool:
        read_back = list(pool.map(lambda r: read(live_server, project, r[1]), results))
    assert read_back == payloads


def _start_failure(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    return subprocess.run(
        [DONJON, "server", "--data-dir", str(data_dir), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_root_key_file_is_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data").start()
    server.stop()
    key = tmp_path / "data" / "root.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    os.chmod(key, 0o644)
    done = _start_failure(["--dev", "--port", "1"], tmp_path / "data")
    assert done.returncode != 0
    assert "readable by others" in done.stderr


def test_every_file_of_the_data_dir_is_private_even_in_an_open_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "open"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    server = LiveServer(data_dir).start()
    try:
        status, _ = request(server, "POST", "/v1/secrets", "p", {"payload": "x", "payload_content_type": "text/plain"})
        assert status == 201
    finally:
        server.stop()
    files = [p for p in data_dir.iterdir() if p.is_file() and p.name != "server.log"]  # the test's own log
    assert {p.name for p in files} >= {"donjon.sqlite", "root.key", "audit.log", "token.key"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077} == {}


def test_dev_mode_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    done = _start_failure(["--dev", "--host", "0.0.0.0", "--port", "1"], tmp_path)  # noqa: S104
    assert done.returncode != 0
    assert "loopback" in done.stderr


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env["DONJON_DATA_DIR"] = str(data_dir)
    return subprocess.run([DONJON, *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_help_and_schema_commands(tmp_path: Path) -> None:
    top = _cli("--help", data_dir=tmp_path)
    assert top.returncode == 0 and "server" in top.stdout and "manage" in top.stdout and "token" in top.stdout
    assert _cli("server", "--help", data_dir=tmp_path).returncode == 0
    assert _cli("--version", data_dir=tmp_path).stdout.startswith("donjon, version")
    before = _cli("manage", "db", "current", data_dir=tmp_path)
    assert before.returncode == 1 and "current: none" in before.stdout
    upgraded = _cli("manage", "db", "upgrade", data_dir=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    after = _cli("manage", "db", "current", data_dir=tmp_path)
    assert after.returncode == 0 and "newest" in after.stdout


def test_openapi_is_served(live_server: LiveServer) -> None:
    status, body = request(live_server, "GET", "/openapi.json", "any")
    assert status == 200
    assert json.loads(body)["openapi"].startswith("3.")


def test_python_module_entry_point(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "donjon", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "server" in done.stdout
