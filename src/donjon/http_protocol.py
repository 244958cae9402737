"""uvicorn's httptools protocol with bounded request heads: 431 before anything else runs.

httptools (llhttp) has no limit on a request's head, and its Python binding grows each header value by
concatenation, so one 48 MB header costs quadratic copying on the event loop: every other client of the
process waits (measured: 8 ms requests took 2.3 s during two such headers). Here the bytes of a head
(request line and headers) are counted as they arrive, and fed to the parser only while within
``limits.max_request_head_bytes``; a single header over ``limits.max_header_bytes`` (name and value) is
refused as soon as it is complete. Either way the client gets a 431 in Barbican's error shape and the
connection is closed: no ASGI application, authentication or audit runs for it.

A response's head (status line and headers) and its first body bytes leave in one write (one ``writev``, one
TCP segment for a small response) instead of uvicorn's two: the cycle writes through ``OneWriteResponse``,
which holds the head until the body's first bytes, the response's end or a close. A second system call and a
second segment per response were ~5 % of a worker's CPU on a payload read.

A new connection's addresses are taken from what the event loop already holds (uvloop keeps them from
``accept``) rather than from a socket object uvicorn would build to ask the kernel again: four
``getsockname`` and one ``getpeername`` per connection, ~4 % of a worker's CPU with Connection: close.

Vault's clients (hvac, the Vault API's LIST operation) send the non-standard method ``LIST``, which llhttp
does not know (400 "Invalid HTTP request"): a request line starting ``LIST `` at the start of a read is fed
to the parser as ``GET `` and its scope gets ``LIST`` back, so the application sees the method sent.

With several workers, a keep-alive request that reaches a worker holding two connections more than the
least loaded one is answered with ``Connection: close``, so that its client reconnects to a worker with room
(``donjon.connection_balance``).

``donjon server`` runs uvicorn with ``http="donjon.http_protocol:BoundedHttpToolsProtocol"``; another ASGI
server in front of ``donjon.asgi:create`` must bound heads itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from donjon.config import LimitsConfig, Settings
from donjon.connection_balance import worker_board

log = logging.getLogger("donjon.http")

# Bodies are fed to the parser in slices of this size, so that the start of a pipelined request's head,
# arriving in the same read as the previous body, is counted from within one slice of where it begins.
_BODY_SLICE = 65536
_STATUS = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # uvicorn's interim response, written before the head


@functools.cache
def _limits() -> LimitsConfig:
    # The worker process builds the same settings as the app (donjon server passes them in the environment).
    return Settings().limits


def too_large_response(limits: LimitsConfig) -> bytes:
    description = (
        f"Request header fields too large: at most {limits.max_header_bytes} bytes per header "
        f"and {limits.max_request_head_bytes} bytes in all."
    )
    body = orjson.dumps({"code": _STATUS.value, "title": _STATUS.phrase, "description": description})
    return b"".join(
        [
            f"HTTP/1.1 {_STATUS.value} {_STATUS.phrase}\r\n".encode(),
            b"content-type: application/json\r\n",
            f"content-length: {len(body)}\r\n".encode(),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class OneWriteResponse:
    """A request cycle's transport that sends the response head together with the first body bytes."""

    __slots__ = ("_transport", "_on_response", "_head", "_head_seen")

    def __init__(self, transport: asyncio.Transport, on_response: Callable[[], None]) -> None:
        self._transport = transport
        self._on_response = on_response  # the protocol's: let go once called (no reference cycle left behind)
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.writelines([head, data])  # one writev, no copy of the body
        elif not self._head_seen and data != _CONTINUE:
            self._head_seen = True  # the cycle's first write, but for an interim 100 Continue, is the head
            self._head = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a head still held (a HEAD response, an empty body, a response cut short)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def response_done(self) -> None:
        """The cycle's ``on_response``: the response is complete, nothing of it may stay held."""
        self.flush()
        on_response, self._on_response = self._on_response, _nothing
        on_response()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _KnownAddresses:
    """A transport as uvicorn's ``connection_made`` sees it: no socket object, so uvicorn reads the local and
    peer addresses the transport already has (IPv6's four-tuples cut to host and port, as the socket path
    gives them)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None
        info = self._transport.get_extra_info(name, default)
        if name in ("sockname", "peername") and isinstance(info, tuple) and len(info) == 4:
            return info[:2]
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _nothing() -> None:
    return None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _limits()
        self._in_head = True  # reading a request line and headers (the first request, or after a message)
        self._head_bytes = 0
        self._refused = False
        self._list_method = False
        self._board = worker_board()
        self._counted = False  # in this worker's count of open connections (several workers only)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self._board is not None:
            self._board.opened()
            self._counted = True
        super().connection_made(_KnownAddresses(transport))  # type: ignore[arg-type]
        # uvicorn keeps what it was given: from here on it writes to, and pauses, the transport itself.
        self.transport = transport
        self.flow = FlowControl(transport)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_bytes == 0 and data.startswith(b"LIST "):
            # A request's first bytes (pipelined requests after the first are left to the parser, which
            # refuses LIST: Vault's clients wait for each answer).
            data, self._list_method = b"GET " + data[5:], True
        while data and not self._refused:
            if self._in_head:
                room = self._limits.max_request_head_bytes - self._head_bytes
                if room <= 0:
                    self._refuse("the request head")
                    return
                part, data = data[:room], data[room:]
                self._head_bytes += len(part)
            else:
                part, data = data[:_BODY_SLICE], data[_BODY_SLICE:]
            super().data_received(part)

    def _refuse(self, what: str) -> None:
        self._refused = True
        log.warning("%s from %s is over the header limits: 431", what, self.client)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(too_large_response(self._limits))
        # else a pipelined request's response is being written: a 431 would interleave with it, so the
        # connection is only closed (after what is already written).
        self.transport.close()

    # Parser callbacks: after a refusal, the rest of the bytes already fed are parsed to no effect.

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        if len(name) + len(value) > self._limits.max_header_bytes:
            self._refuse("a header")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if not self._refused:
            super().on_headers_complete()  # builds the scope and schedules the app (it has not run yet)
            writer = OneWriteResponse(self.transport, self.cycle.on_response)
            self.cycle.transport = writer  # type: ignore[assignment]
            self.cycle.on_response = writer.response_done
            if self._moves_away():
                self._count_out()
                self.cycle.keep_alive = False  # answered with Connection: close; the client reconnects elsewhere
            if self._list_method:
                self.scope["method"] = "LIST"
        self._list_method = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._count_out()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # A graceful shutdown begins (uvicorn calls this on every connection): no more clients sent this way.
        if self._board is not None:
            self._board.leave()
        super().shutdown()

    def _moves_away(self) -> bool:
        # A connection with pipelined requests queued stays: closing it would leave them unanswered.
        if not self._counted or not self.cycle.keep_alive or self.pipeline or self._board is None:
            return False
        return self._board.over_share()

    def _count_out(self) -> None:
        if self._counted and self._board is not None:
            self._counted = False
            self._board.closed()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        # The next request's head starts: its bytes are counted from here (those already fed with this
        # message's last slice are at most one slice).
        self._in_head = True
        self._head_bytes = 0
        if not self._refused:
            super().on_message_complete()
