"""Bounded request heads (issue 12, finding 8): ``donjon server`` answers 431 past 8 KiB in one header or 32 KiB
in a whole head, before authentication or anything else runs, and without reading the rest of a huge header.

Timing is not asserted here (bench/header_flood.py measures what a flood does to other clients); these
tests check what is answered, and that the server answers a huge header from its first bytes.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from donjon.config import LimitsConfig
from donjon.http_protocol import too_large_response
from tests.live_server import LiveServer

pytestmark = pytest.mark.live

DESCRIPTION = "Request header fields too large: at most 8192 bytes per header and 32768 bytes in all."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("heads"), workers=1).start()
    yield live
    live.stop()


def request_head(headers: dict[str, str], path: str = "/v1/secrets") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "X-Project-Id: heads"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from the socket (with a Content-Length body)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def exchange(server: LiveServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking everything: the answer is still there
        return read_response(sock)


def assert_431(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 431
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    assert json.loads(body) == {"code": 431, "title": "Request Header Fields Too Large", "description": DESCRIPTION}


def test_heads_within_the_limits_are_served(server: LiveServer) -> None:
    # One header of 8 KiB (name + value), and 30 KiB of headers in all.
    headers = {"X-Big": "a" * (8192 - len("X-Big"))} | {f"X-Fill-{i}": "b" * 5000 for i in range(4)}
    status, _, body = exchange(server, request_head(headers))
    assert status == 200, body


def test_one_header_over_8_kib_is_431(server: LiveServer) -> None:
    assert_431(*exchange(server, request_head({"X-Big": "a" * (8193 - len("X-Big"))})))


def test_a_head_over_32_kib_is_431(server: LiveServer) -> None:
    assert_431(*exchange(server, request_head({f"X-Fill-{i}": "b" * 4000 for i in range(9)})))


def test_a_huge_header_is_answered_from_its_first_bytes(server: LiveServer) -> None:
    # 64 KiB of a header announced as 48 MB, then nothing: the answer must not wait for the rest.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/secrets HTTP/1.1\r\nHost: x\r\nX-Project-Id: heads\r\nX-Huge: " + b"a" * 65536)
        assert_431(*read_response(sock))
        assert sock.recv(1) == b""  # closed


def test_the_url_counts_in_the_head(server: LiveServer) -> None:
    assert_431(*exchange(server, request_head({}, path="/v1/secrets?name=" + "a" * 40000)))


def test_keep_alive_counts_each_request_on_its_own(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for _ in range(3):  # 3 x 20 KiB of headers on one connection: each request is within the limits
            sock.sendall(request_head({f"X-Fill-{i}": "b" * 5000 for i in range(4)}))
            status, headers, _ = read_response(sock)
            assert status == 200 and headers.get("connection") != "close"
        sock.sendall(request_head({"X-Big": "a" * 9000}))
        assert_431(*read_response(sock))


def test_a_body_is_not_counted_as_head(server: LiveServer) -> None:
    payload = "p" * 19000  # larger than the whole head limit, within max_secret_bytes
    body = json.dumps({"payload": payload, "payload_content_type": "text/plain"})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v1/secrets", body, {"X-Project-Id": "heads", "Content-Type": "application/json"})
    assert conn.getresponse().status == 201
    conn.close()


def test_other_clients_are_served_during_two_48_mb_headers(server: LiveServer) -> None:
    sent: list[int] = []

    def flood() -> None:
        chunk = b"a" * 65536
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ")
            total = 0
            try:
                while total < 48_000_000:
                    sock.sendall(chunk)
                    total += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            sent.append(total)

    floods = [threading.Thread(target=flood) for _ in range(2)]
    for t in floods:
        t.start()
    statuses = []
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/v1/secrets", headers={"X-Project-Id": "heads"})
        statuses.append(conn.getresponse().status)
        conn.close()
    for t in floods:
        t.join(60)
    assert statuses == [200] * 20
    # The server stopped reading each flood near the limit (plus what the kernel's buffers took).
    assert len(sent) == 2 and all(n < 48_000_000 for n in sent), sent


def test_the_431_body_follows_the_configured_limits() -> None:
    raw = too_large_response(LimitsConfig(max_header_bytes=1000, max_request_head_bytes=4000))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body)["description"] == (
        "Request header fields too large: at most 1000 bytes per header and 4000 bytes in all."
    )
