"""The plain-HTTP listener's protocol: a TLS handshake sent to it gets an answer that says what to do.

A client told ``https://`` for a server without TLS sends a ClientHello, which the HTTP parser would
answer with a bare "Invalid HTTP request". Here the first bytes of a connection are recognised as a TLS
record (content type 22, handshake; version 3.x) and answered in plain HTTP with Barbican's error shape;
the server log says it too (at most once a minute: scanners send these all day). Most TLS clients only
report "wrong version number", so the log line is the one a user finds.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any

import orjson

from donjon.http_protocol import BoundedHttpToolsProtocol

log = logging.getLogger("donjon.http")

HINT = (
    "This donjon server speaks plain HTTP on this port, and a TLS handshake was sent to it: use an http:// URL, "
    "or enable TLS on the server (tls.cert_file and tls.key_file)."
)
_LOG_INTERVAL = 60.0
_last_logged = -_LOG_INTERVAL


def is_tls_handshake(data: bytes) -> bool:
    # A TLS record header: type 0x16 (handshake), then the legacy version 0x03 0x0N.
    return len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03 and data[2] <= 0x04


def hint_response() -> bytes:
    status = HTTPStatus.BAD_REQUEST
    body = orjson.dumps({"code": status.value, "title": status.phrase, "description": HINT})
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class PlainHttpProtocol(BoundedHttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first = True

    def data_received(self, data: bytes) -> None:
        if self._first:
            self._first = False
            if is_tls_handshake(data):
                _log_hint(self.client)
                self.transport.write(hint_response())
                self.transport.close()
                return
        super().data_received(data)


def _log_hint(client: Any) -> None:
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= _LOG_INTERVAL:
        _last_logged = now
        where = "%s:%d" % client if client else "a client"  # noqa: UP031 - client is (host, port)
        log.warning("a TLS handshake from %s reached the plain-HTTP listener: %s", where, HINT)
