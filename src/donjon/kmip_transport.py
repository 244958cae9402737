"""A KMIP client connection pool over mutual TLS, speaking PyKMIP's TTLV message encoding.

Shared by the KMIP keystore (the root key) and the KMIP secret store (payloads as managed objects). Why not
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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from donjon.errors import ConfigurationError

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


# Every user of a KMIP server (keystore, secret store, SDK backend) is configured with these, plus its own.
CONNECTION_OPTIONS = frozenset({"host", "port", "certfile", "keyfile", "ca_certs", "timeout", "pool_size"})


def open_pool(
    options: Mapping[str, Any], allowed: Collection[str], what: str, *, default_pool_size: int
) -> tuple[Pool, str]:
    """A connection pool to the server ``options`` name, and its ``host:port`` for messages.

    Raises ConfigurationError (prefixed with ``what``) for an option outside ``allowed``, a missing address or
    TLS file, or a bad number; nothing is connected yet.
    """
    unknown = set(options) - set(allowed)
    if unknown:
        raise ConfigurationError(f"{what}: unknown options {sorted(unknown)}")
    missing = [name for name in ("host", "certfile", "keyfile", "ca_certs") if not options.get(name)]
    if missing:
        raise ConfigurationError(f"{what}: {', '.join(repr(m) for m in missing)} required")
    host = str(options["host"])
    port = positive_int(options, "port", 5696, what)
    timeout = positive_float(options, "timeout", 10.0, what)
    pool_size = positive_int(options, "pool_size", default_pool_size, what)
    return Pool(Endpoint(host, port, timeout, tls_context(options, what)), pool_size), f"{host}:{port}"


def tls_context(options: Mapping[str, Any], what: str) -> ssl.SSLContext:
    """Client context for mutual TLS from ``ca_certs``, ``certfile`` and ``keyfile``; ``what`` names the user."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=str(options["ca_certs"]))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"{what}: cannot load ca_certs {options['ca_certs']}: {why(exc)}") from None
    try:
        context.load_cert_chain(str(options["certfile"]), str(options["keyfile"]))
    except (OSError, ssl.SSLError) as exc:
        # Names the files, never their content.
        raise ConfigurationError(
            f"{what}: cannot load the client certificate {options['certfile']} "
            f"with its key {options['keyfile']}: {why(exc)}"
        ) from None
    return context


def why(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__)


def positive_int(options: Mapping[str, Any], name: str, default: int, what: str) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigurationError(f"{what}: {name!r} must be a positive integer")
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigurationError(f"{what}: {name!r} must be a positive integer")
    return number


def positive_float(options: Mapping[str, Any], name: str, default: float, what: str) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if isinstance(value, bool) or not number > 0:
        raise ConfigurationError(f"{what}: {name!r} must be a positive number of seconds")
    return number


def boolean(options: Mapping[str, Any], name: str, default: bool, what: str) -> bool:
    # From a TOML file this is a bool; from DONJON_KEYSTORE__OPTIONS__* variables it is a string.
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ConfigurationError(f"{what}: {name!r} must be true or false")
