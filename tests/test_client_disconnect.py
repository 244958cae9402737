"""A client that closes its connection mid-body is the client's doing, not a server fault.

Before: ``Secret creation: unexpected ClientDisconnect`` at ERROR, a 500 in the access log and audit record,
for every request a stopped load tool or a killed client left half-sent. Now: a 400 in both, nothing logged
as an error, nothing written, and the server goes on answering.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer

pytestmark = pytest.mark.live

PROJECT = "gone-midway"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("disconnect"), workers=1).start()
    yield live
    live.stop()


def send_half_and_leave(server: LiveServer, method: str, path: str, headers: dict[str, str]) -> None:
    """A head announcing 1 000 bytes of JSON, 10 of them, then the connection closed."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", "Content-Length: 1000"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"payload"')


def audit_reasons(server: LiveServer, path: str) -> list[str]:
    events = [json.loads(line)["event"] for line in (server.data_dir / "audit.log").read_bytes().splitlines()]
    return [e["reason"]["reasonCode"] for e in events if e["target"]["name"] == path]


def wait_for(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def secret_count(server: LiveServer) -> int:
    conn = server.connection()
    conn.request("GET", "/v1/secrets", headers={"X-Project-Id": PROJECT})
    response = conn.getresponse()
    assert response.status == 200
    total = int(json.loads(response.read())["total"])
    conn.close()
    return total


def test_a_body_cut_short_is_a_400_not_a_server_error(server: LiveServer) -> None:
    send_half_and_leave(server, "POST", "/v1/secrets", {"X-Project-Id": PROJECT})
    send_half_and_leave(server, "POST", "/v1/secret/data/gone", {"X-Vault-Token": PROJECT})  # dev mode: names it
    # Each outcome lands in the audit log once the server has seen the close.
    wait_for(lambda: all("400" in audit_reasons(server, path) for path in ("/v1/secrets", "/v1/secret/data/gone")))

    assert audit_reasons(server, "/v1/secrets") == ["pending", "400"]
    assert audit_reasons(server, "/v1/secret/data/gone")[-1:] == ["400"]
    assert secret_count(server) == 0  # nothing was written, and the server still answers
    log = server.log.read_text()
    assert "ClientDisconnect" not in log
    assert " 500" not in log and "ERROR" not in log, log
