"""A KMIP client connection pool over mutual TLS, speaking PyKMIP's TTLV message encoding.

Shared by the KMIP keystore (the root key), the KMIP secret store (payloads as managed objects) and the SDK's
``kmip`` backend, which all take the connection options of ``KmipConnectionOptions``. Why not
PyKMIP's ProxyKmipClient: it is not thread-safe, cannot check the server's host name (it wraps the socket
without ``server_hostname``), reads ``~/.pykmip/pykmip.conf``, and its KMIPProtocol logs whole messages -
key material included - at DEBUG. Only PyKMIP's message classes are used here.

Connections: TLS 1.2 or newer, the server's certificate checked against ``ca_certs`` and ``host``, one KMIP
request at a time per connection. A pool serves the request threads; a connection that fails mid-request is
dropped and the request retried once on a fresh one unless the caller says the operation is not idempotent.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from donjon.errors import ConfigurationError
from donjon.options import Integer, PluginOptions, Seconds, Text

with warnings.catch_warnings():
    # Importing any of PyKMIP 0.11 loads its SQLAlchemy models, which warn about SQLAlchemy 2 on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kmip.core import enums
    from kmip.core.messages import contents, messages
    from kmip.core.utils import BytearrayStream

# 1.4: the first version with AAD and tag in Encrypt/Decrypt.
KMIP_VERSION = enums.KMIPVersion.KMIP_1_4
_PROTOCOL_VERSION = (1, 4)
# Responses carry at most a payload (secrets are limited well below this); anything claiming more is not a
# KMIP server we should trust.
_MAX_RESPONSE_BYTES = 4 << 20


class KmipUnavailable(Exception):
    """The KMIP server could not be reached or answered nonsense. Carries no key material."""


class OperationFailed(Exception):
    """The KMIP server answered an operation with a failure status."""

    def __init__(self, operation: enums.Operation, reason: Any, message: str) -> None:
        self.reason = reason
        super().__init__(f"KMIP {operation.name} failed: {getattr(reason, 'name', reason)}: {message}")


class Broken(Exception):
    """The connection is unusable (closed, reset, timed out, framing error): drop it and maybe retry."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    timeout: float
    tls: ssl.SSLContext


class Connection:
    """One mutual-TLS connection speaking KMIP request/response, one request at a time."""

    def __init__(self, endpoint: Endpoint) -> None:
        raw = socket.create_connection((endpoint.host, endpoint.port), timeout=endpoint.timeout)
        try:
            self._sock = endpoint.tls.wrap_socket(raw, server_hostname=endpoint.host)
        except BaseException:
            raw.close()
            raise

    def call(self, operation: enums.Operation, payload: Any) -> Any:
        header = messages.RequestHeader(
            protocol_version=contents.ProtocolVersion(*_PROTOCOL_VERSION), batch_count=contents.BatchCount(1)
        )
        item = messages.RequestBatchItem(operation=contents.Operation(operation), request_payload=payload)
        out = BytearrayStream()
        messages.RequestMessage(request_header=header, batch_items=[item]).write(out, KMIP_VERSION)
        try:
            self._sock.sendall(out.buffer)
            head = self._read_exactly(8)
            # TTLV: tag (3) type (1) length (4), then the structure's body.
            (length,) = struct.unpack("!I", head[4:])
            if length > _MAX_RESPONSE_BYTES:
                raise Broken("oversized KMIP response")
            body = self._read_exactly(length)
        except (OSError, EOFError) as exc:
            raise Broken(type(exc).__name__) from None
        response = messages.ResponseMessage()
        try:
            response.read(BytearrayStream(head + body), KMIP_VERSION)
        except Exception:
            raise Broken("unparsable KMIP response") from None
        if len(response.batch_items) != 1:
            raise Broken("unexpected KMIP response")
        result = response.batch_items[0]
        if result.result_status.value != enums.ResultStatus.SUCCESS:
            reason = result.result_reason.value if result.result_reason else None
            message = result.result_message.value if result.result_message else ""
            raise OperationFailed(operation, reason, message)
        return result.response_payload

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self._sock.recv(n)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class Pool:
    """Up to ``size`` connections shared by threads; a request waits for a free one."""

    def __init__(self, endpoint: Endpoint, size: int) -> None:
        self._endpoint = endpoint
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def call(self, operation: enums.Operation, payload: Any, *, retry: bool = True) -> Any:
        if not self._slots.acquire(timeout=self._endpoint.timeout):
            raise KmipUnavailable("no free KMIP connection")
        try:
            for attempt in (1, 2):
                connection = self._take()
                try:
                    result = connection.call(operation, payload)
                except Broken as exc:
                    connection.close()
                    if attempt == 2 or not retry:
                        raise self._unavailable(exc) from None
                    continue
                except OperationFailed:
                    self._give_back(connection)  # a refusal leaves the connection usable
                    raise
                except BaseException:
                    connection.close()  # unknown state: never hand it to another request
                    raise
                self._give_back(connection)
                return result
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    def _take(self) -> Connection:
        with self._lock:
            if self._closed:
                raise KmipUnavailable("KMIP connection pool is closed")
            if self._pid != os.getpid():
                # A forked child must not share the parent's TLS sessions: start afresh.
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        try:
            return Connection(self._endpoint)
        except (OSError, ssl.SSLError) as exc:
            raise self._unavailable(exc) from None

    def _give_back(self, connection: Connection) -> None:
        with self._lock:
            if not self._closed and self._pid == os.getpid():
                self._idle.append(connection)
                return
        connection.close()

    def _unavailable(self, exc: BaseException) -> KmipUnavailable:
        # The TLS error's reason (e.g. CERTIFICATE_VERIFY_FAILED) helps the operator and holds no secret.
        detail = exc.args[0] if isinstance(exc, Broken) and exc.args else why(exc)
        return KmipUnavailable(f"KMIP server {self._endpoint.host}:{self._endpoint.port}: {detail}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class KmipConnectionOptions(PluginOptions):
    """How to reach a KMIP server; each user's options model adds its own to these."""

    host: Text
    port: Integer = Field(5696, ge=1, le=65535)
    certfile: Text  # the client certificate (mutual TLS)
    keyfile: Text  # its private key
    ca_certs: Text  # the CA(s) that issued the server's certificate
    timeout: Seconds = 10.0  # to connect, and per request
    pool_size: Integer = Field(4, ge=1)  # connections per process


def open_pool(options: KmipConnectionOptions, what: str) -> tuple[Pool, str]:
    """A connection pool to the server ``options`` name, and its ``host:port`` for messages.

    Raises ConfigurationError (prefixed with ``what``) if a TLS file cannot be loaded; nothing is connected yet.
    """
    endpoint = Endpoint(options.host, options.port, options.timeout, tls_context(options, what))
    return Pool(endpoint, options.pool_size), f"{options.host}:{options.port}"


def tls_context(options: KmipConnectionOptions, what: str) -> ssl.SSLContext:
    """Client context for mutual TLS from ``ca_certs``, ``certfile`` and ``keyfile``; ``what`` names the user."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=options.ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"{what}: cannot load ca_certs {options.ca_certs}: {why(exc)}") from None
    try:
        context.load_cert_chain(options.certfile, options.keyfile)
    except (OSError, ssl.SSLError) as exc:
        # Names the files, never their content.
        raise ConfigurationError(
            f"{what}: cannot load the client certificate {options.certfile} with its key {options.keyfile}: {why(exc)}"
        ) from None
    return context


def why(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__)
