"""``donjon.http_protocol``'s own work per connection: a response's head and its first body bytes leave in one
write (``OneWriteResponse``), and a connection's addresses come from the transport (no socket object).

The protocol runs here as ``donjon server`` runs it (uvicorn's request cycle on a real socket of a real event
loop); only the transport is watched, every call passed on to the real one. What the client reads must be
exactly what uvicorn alone would have sent, in the same order: a held head is never lost or reordered.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from donjon.http_protocol import BoundedHttpToolsProtocol, OneWriteResponse

Scope = dict[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class WatchedTransport:
    """The real transport, with each write it is asked for noted as (call, number of buffers)."""

    def __init__(self, transport: asyncio.Transport, calls: list[tuple[str, int]]) -> None:
        self._transport = transport
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append(("write", 1))
        self._transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        self._calls.append(("writelines", len(parts)))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def hello(scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fail":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("the handler failed after starting its response")
    answer = b"hello " + (body or scope["path"].encode())
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def addresses(
    scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    answer = repr((scope["client"], scope["server"])).encode()
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def serve(
    data: bytes, app: App = hello, host: str = "127.0.0.1", seen: list[tuple[Any, Any]] | None = None
) -> tuple[bytes, list[tuple[str, int]]]:
    """Send ``data`` on one connection to the protocol serving ``app``; everything read back, and the writes.
    ``seen`` gets the client's own (address, port) and the server's."""
    config = uvicorn.Config(app, log_level="critical", lifespan="off")
    config.load()
    state = ServerState()
    calls: list[tuple[str, int]] = []

    class Watched(BoundedHttpToolsProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(WatchedTransport(transport, calls))  # type: ignore[arg-type]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Watched(config=config, server_state=state, app_state={}), host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(host, port)
        if seen is not None:
            seen.append((writer.get_extra_info("sockname")[:2], writer.get_extra_info("peername")[:2]))
        writer.write(data)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 10)  # until the server closes (Connection: close)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return received, calls


def request(method: str, path: str, *extra: str, body: bytes = b"", close: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *extra]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def responses(raw: bytes) -> list[tuple[str, bytes]]:
    """(status line, body) of each response in ``raw`` (bodies by Content-Length)."""
    found = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = 0 if lines[0].endswith(b" 100 Continue") else int(headers[b"content-length"])
        found.append((lines[0].decode(), raw[:length]))
        raw = raw[length:]
    return found


def test_a_response_head_and_body_go_out_in_one_write() -> None:
    raw, calls = asyncio.run(serve(request("GET", "/one", close=True)))
    assert responses(raw) == [("HTTP/1.1 200 OK", b"hello /one")]
    assert calls == [("writelines", 2)]


def test_keep_alive_and_pipelined_responses_each_go_out_in_one_write_in_order() -> None:
    pipelined = request("GET", "/a") + request("POST", "/b", body=b"body-b") + request("GET", "/c", close=True)
    raw, calls = asyncio.run(serve(pipelined))
    assert responses(raw) == [
        ("HTTP/1.1 200 OK", b"hello /a"),
        ("HTTP/1.1 200 OK", b"hello body-b"),
        ("HTTP/1.1 200 OK", b"hello /c"),
    ]
    assert calls == [("writelines", 2)] * 3


def test_a_head_response_without_body_is_sent_when_it_completes() -> None:
    # HEAD: uvicorn writes no body at all, so the held head goes out when the response completes; the next
    # request on the connection is then answered after it, not before.
    raw, calls = asyncio.run(serve(request("HEAD", "/h") + request("GET", "/after", close=True)))
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 8" in head
    assert responses(rest) == [("HTTP/1.1 200 OK", b"hello /after")]
    assert calls == [("write", 1), ("writelines", 2)]


def test_an_interim_100_continue_is_not_held() -> None:
    raw, calls = asyncio.run(serve(request("POST", "/e", "Expect: 100-continue", body=b"sent", close=True)))
    assert responses(raw) == [("HTTP/1.1 100 Continue", b""), ("HTTP/1.1 200 OK", b"hello sent")]
    assert calls == [("write", 1), ("writelines", 2)]


def test_a_response_cut_short_still_sends_its_head_before_the_connection_closes() -> None:
    raw, calls = asyncio.run(serve(request("GET", "/fail")))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"content-length: 10\r\n\r\n")
    assert calls == [("write", 1)]


@pytest.mark.parametrize("writes", [[b"head", b"body"], [b"head", b"one", b"two"]])
def test_the_writer_joins_only_the_head_with_the_first_body_bytes(writes: list[bytes]) -> None:
    sent: list[tuple[str, int]] = []

    class Sink:
        def write(self, data: bytes) -> None:
            sent.append(("write", 1))

        def writelines(self, parts: list[bytes]) -> None:
            sent.append(("writelines", len(parts)))

    done: list[bool] = []
    writer = OneWriteResponse(Sink(), lambda: done.append(True))  # type: ignore[arg-type]
    for data in writes:
        writer.write(data)
    writer.response_done()
    writer.response_done()  # the protocol's callback is called once, and let go
    assert sent == [("writelines", 2)] + [("write", 1)] * (len(writes) - 2)
    assert done == [True]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_scope_has_the_connections_addresses_from_the_transport(host: str) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
    except OSError:
        pytest.skip(f"no {host} here")
    seen: list[tuple[Any, Any]] = []
    raw, _ = asyncio.run(serve(request("GET", "/", close=True), addresses, host, seen))
    ((client, server),) = seen
    # What uvicorn would have asked the socket for: (host, port) pairs, IPv6's cut from four-tuples too.
    assert responses(raw) == [("HTTP/1.1 200 OK", repr((client, server)).encode())]
