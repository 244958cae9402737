"""The KMIP keystore: the root key is an AES-256 key held by a KMIP server, which does every wrap and unwrap.

The root key is created on the KMIP server (named ``key_name``, usage Encrypt|Decrypt) and never retrieved:
donjon sends a KEK to the server's Encrypt operation and gets it back from Decrypt. The mode is AES-256-GCM
with associated data (KMIP 1.4's Authenticated Encryption Additional Data and Tag), so integrity and the
binding to the context are checked by the server with the root key, in one round trip each way.

Blob (version 1): ``0x01 || nonce (12) || ciphertext || tag (16)``; associated data = ``0x01 || context``,
so a blob cannot be re-labelled as another format. The nonce is a fresh random 96 bits chosen here
(PyKMIP would otherwise make a 128-bit one), which keeps the format fixed.

Checked against PyKMIP 0.11's server (tests/test_keystore_kmip.py):
- GCM Encrypt/Decrypt with AAD works when the request is KMIP 1.4 (the server parses a request at the
  version in its header); at 1.2 the AAD and tag fields do not exist.
- The server accepts a *shortened* tag (it sets ``min_tag_length`` to the length received), so the tag
  is always cut at a fixed 16 bytes from the end of a blob of checked length: a truncated blob never
  turns into a shorter, weaker tag.
- A tag mismatch is a GENERAL_FAILURE with no detail; every refusal of a Decrypt (unknown key, wrong
  tag, a key that is not active) is the same opaque ``DecryptionFailed`` here.

Why not PyKMIP's ProxyKmipClient: it does not expose the AAD and tag fields, is not thread-safe, cannot
check the server's host name (it wraps the socket without ``server_hostname``), reads
``~/.pykmip/pykmip.conf``, and its KMIPProtocol logs whole messages - KEKs included - at DEBUG. Only
PyKMIP's TTLV message encoding is used here.

``root_key_id()`` is ``kmip:<uid>``: a wrapped KEK names the key that wrapped it, so several roots coexist
and a rotation only adds a key.

Connections: mutual TLS (TLS 1.2 or newer, the server's certificate checked against ``ca_certs`` and
``host``), one KMIP request at a time per connection. A small pool serves the request threads; a connection
that fails mid-request is dropped and the request retried once on a fresh one (Encrypt, Decrypt, Locate
and Get Attributes change nothing on the server, and a repeated Activate is checked; Create is never retried).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from donjon.crypto import DecryptionFailed
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey

with warnings.catch_warnings():
    # Importing any of PyKMIP 0.11 loads its SQLAlchemy models, which warn about SQLAlchemy 2 on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kmip.core import enums
    from kmip.core.attributes import CryptographicParameters, UniqueIdentifier
    from kmip.core.factories.attributes import AttributeFactory
    from kmip.core.messages import contents, messages, payloads
    from kmip.core.objects import TemplateAttribute
    from kmip.core.utils import BytearrayStream

log = logging.getLogger(__name__)

_VERSION = b"\x01"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_ID_PREFIX = "kmip:"

# 1.4: the first version with AAD and tag in Encrypt/Decrypt.
_KMIP_VERSION = enums.KMIPVersion.KMIP_1_4
_PROTOCOL_VERSION = (1, 4)
# Our responses are a few hundred bytes; anything claiming more is not a KMIP server we should trust.
_MAX_RESPONSE_BYTES = 1 << 20

_OPTIONS = {"host", "port", "certfile", "keyfile", "ca_certs", "key_name", "key_id", "create", "timeout", "pool_size"}

_GCM = CryptographicParameters(
    block_cipher_mode=enums.BlockCipherMode.GCM,
    cryptographic_algorithm=enums.CryptographicAlgorithm.AES,
    tag_length=_TAG_BYTES,
)
_USAGE = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]


class KmipUnavailable(Exception):
    """The KMIP server could not be reached or answered nonsense. Carries no key material."""


class _OperationFailed(Exception):
    """The KMIP server answered an operation with a failure status."""

    def __init__(self, operation: enums.Operation, reason: Any, message: str) -> None:
        self.reason = reason
        super().__init__(f"KMIP {operation.name} failed: {getattr(reason, 'name', reason)}: {message}")


class _Broken(Exception):
    """The connection is unusable (closed, reset, timed out, framing error): drop it and maybe retry."""


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    timeout: float
    tls: ssl.SSLContext


class _Connection:
    """One mutual-TLS connection speaking KMIP request/response, one request at a time."""

    def __init__(self, endpoint: _Endpoint) -> None:
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
        messages.RequestMessage(request_header=header, batch_items=[item]).write(out, _KMIP_VERSION)
        try:
            self._sock.sendall(out.buffer)
            head = self._read_exactly(8)
            # TTLV: tag (3) type (1) length (4), then the structure's body.
            (length,) = struct.unpack("!I", head[4:])
            if length > _MAX_RESPONSE_BYTES:
                raise _Broken("oversized KMIP response")
            body = self._read_exactly(length)
        except (OSError, EOFError) as exc:
            raise _Broken(type(exc).__name__) from None
        response = messages.ResponseMessage()
        try:
            response.read(BytearrayStream(head + body), _KMIP_VERSION)
        except Exception:
            raise _Broken("unparsable KMIP response") from None
        if len(response.batch_items) != 1:
            raise _Broken("unexpected KMIP response")
        result = response.batch_items[0]
        if result.result_status.value != enums.ResultStatus.SUCCESS:
            reason = result.result_reason.value if result.result_reason else None
            message = result.result_message.value if result.result_message else ""
            raise _OperationFailed(operation, reason, message)
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


class _Pool:
    """Up to ``size`` connections shared by threads; a request waits for a free one."""

    def __init__(self, endpoint: _Endpoint, size: int) -> None:
        self._endpoint = endpoint
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Connection] = []
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
                except _Broken as exc:
                    connection.close()
                    if attempt == 2 or not retry:
                        raise self._unavailable(exc) from None
                    continue
                except _OperationFailed:
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

    def _take(self) -> _Connection:
        with self._lock:
            if self._closed:
                raise KmipUnavailable("KMIP keystore is closed")
            if self._pid != os.getpid():
                # A forked child must not share the parent's TLS sessions: start afresh.
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        try:
            return _Connection(self._endpoint)
        except (OSError, ssl.SSLError) as exc:
            raise self._unavailable(exc) from None

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if not self._closed and self._pid == os.getpid():
                self._idle.append(connection)
                return
        connection.close()

    def _unavailable(self, exc: BaseException) -> KmipUnavailable:
        # The TLS error's reason (e.g. CERTIFICATE_VERIFY_FAILED) helps the operator and holds no secret.
        detail = exc.args[0] if isinstance(exc, _Broken) and exc.args else _why(exc)
        return KmipUnavailable(f"KMIP server {self._endpoint.host}:{self._endpoint.port}: {detail}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _parse_root_key_id(root_key_id: str) -> str | None:
    """The KMIP uid in ``kmip:<uid>``, or None for an id that is not ours."""
    if not root_key_id.startswith(_ID_PREFIX) or len(root_key_id) == len(_ID_PREFIX):
        return None
    return root_key_id[len(_ID_PREFIX) :]


class KmipKeystore:
    def __init__(self, pool: _Pool, uid: str, endpoint: str) -> None:
        self._pool = pool
        self._uid = uid
        self._endpoint = endpoint

    def __repr__(self) -> str:
        return f"KmipKeystore(server={self._endpoint!r}, root_key_id={self.root_key_id()!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> KmipKeystore:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"kmip keystore: unknown options {sorted(unknown)}")
        missing = [name for name in ("host", "certfile", "keyfile", "ca_certs") if not options.get(name)]
        if missing:
            raise ConfigurationError(f"kmip keystore: {', '.join(repr(m) for m in missing)} required")
        host = str(options["host"])
        port = _positive_int(options, "port", 5696)
        pool_size = _positive_int(options, "pool_size", 4)
        timeout = _positive_float(options, "timeout", 10.0)
        key_name = str(options.get("key_name") or "donjon-root")
        create = _boolean(options, "create", True)
        key_id = options.get("key_id")

        pool = _Pool(_Endpoint(host, port, timeout, _tls_context(options)), pool_size)
        try:
            uid = _check_key(pool, str(key_id)) if key_id else _find_or_create(pool, key_name, create)
            keystore = cls(pool, uid, f"{host}:{port}")
            keystore._self_test()
        except KmipUnavailable as exc:
            pool.close()
            raise ConfigurationError(f"kmip keystore: cannot use {exc}") from None
        except _OperationFailed as exc:
            pool.close()
            raise ConfigurationError(f"kmip keystore: {exc}") from None
        except BaseException:
            pool.close()
            raise
        return keystore

    def root_key_id(self) -> str:
        return _ID_PREFIX + self._uid

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        if not key:
            raise ValueError("nothing to wrap")
        nonce = os.urandom(_NONCE_BYTES)
        try:
            response = self._pool.call(
                enums.Operation.ENCRYPT,
                payloads.EncryptRequestPayload(
                    unique_identifier=self._uid,
                    cryptographic_parameters=_GCM,
                    data=key,
                    iv_counter_nonce=nonce,
                    auth_additional_data=_VERSION + context,
                ),
            )
        except _OperationFailed as exc:
            # Our own current root refusing to encrypt: the server changed under us, not a bad input.
            raise KmipUnavailable(str(exc)) from None
        ciphertext, tag = response.data, response.auth_tag
        if not ciphertext or len(ciphertext) != len(key) or not tag or len(tag) != _TAG_BYTES:
            raise KmipUnavailable("KMIP server returned a malformed GCM result")
        return WrappedKey(self.root_key_id(), _VERSION + nonce + ciphertext + tag)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        uid = _parse_root_key_id(wrapped.root_key_id)
        blob = wrapped.blob
        if uid is None or blob[:1] != _VERSION or len(blob) <= 1 + _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed
        # Fixed offsets: the tag is always the last 16 bytes, so no shorter tag ever reaches the server.
        nonce = blob[1 : 1 + _NONCE_BYTES]
        ciphertext, tag = blob[1 + _NONCE_BYTES : -_TAG_BYTES], blob[-_TAG_BYTES:]
        try:
            response = self._pool.call(
                enums.Operation.DECRYPT,
                payloads.DecryptRequestPayload(
                    unique_identifier=uid,
                    cryptographic_parameters=_GCM,
                    data=ciphertext,
                    iv_counter_nonce=nonce,
                    auth_additional_data=_VERSION + context,
                    auth_tag=tag,
                ),
            )
        except _OperationFailed as exc:
            # Wrong tag (GENERAL_FAILURE), unknown or foreign key, key no longer active: one opaque failure.
            log.debug("KMIP Decrypt refused: %s", getattr(exc.reason, "name", exc.reason))
            raise DecryptionFailed from None
        plaintext: bytes | None = response.data
        if not plaintext or len(plaintext) != len(ciphertext):
            raise DecryptionFailed
        return plaintext

    def close(self) -> None:
        self._pool.close()

    def _self_test(self) -> None:
        """A wrap and unwrap at start-up: a server without GCM fails here, not on a client's request."""
        probe = os.urandom(32)
        try:
            wrapped = self.wrap(probe, b"donjon/kmip/self-test")
            ok = self.unwrap(wrapped, b"donjon/kmip/self-test") == probe
        except DecryptionFailed:
            ok = False
        if not ok:
            raise ConfigurationError(f"kmip keystore: key {self.root_key_id()!r} does not wrap and unwrap with GCM")


def _tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=str(options["ca_certs"]))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"kmip keystore: cannot load ca_certs {options['ca_certs']}: {_why(exc)}") from None
    try:
        context.load_cert_chain(str(options["certfile"]), str(options["keyfile"]))
    except (OSError, ssl.SSLError) as exc:
        # Names the files, never their content.
        raise ConfigurationError(
            f"kmip keystore: cannot load the client certificate {options['certfile']} "
            f"with its key {options['keyfile']}: {_why(exc)}"
        ) from None
    return context


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__)


def _find_or_create(pool: _Pool, name: str, create: bool) -> str:
    """The usable AES-256 key called ``name``; with ``create``, made if there is none.

    Concurrent first starts converge: each creates, then every one takes the lowest identifier among the
    pre-active or active keys of that name (PyKMIP numbers objects in creation order) and activates it.
    """
    uid = _lowest_usable(pool, name)
    if uid is None:
        if not create:
            raise ConfigurationError(f"kmip keystore: no usable key named {name!r} on the server and create is false")
        factory = AttributeFactory()
        template = TemplateAttribute(
            attributes=[
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, _USAGE),
                factory.create_attribute(enums.AttributeType.NAME, name),
            ]
        )
        created = pool.call(
            enums.Operation.CREATE,
            payloads.CreateRequestPayload(object_type=enums.ObjectType.SYMMETRIC_KEY, template_attribute=template),
            retry=False,  # a retried Create could leave a second key; the look-up below copes, but why make one
        ).unique_identifier
        log.info("created KMIP key %s named %r", created, name)
        uid = _lowest_usable(pool, name) or created
    return _check_key(pool, uid)


def _lowest_usable(pool: _Pool, name: str) -> str | None:
    factory = AttributeFactory()
    found = pool.call(
        enums.Operation.LOCATE,
        payloads.LocateRequestPayload(
            attributes=[
                factory.create_attribute(enums.AttributeType.NAME, name),
                factory.create_attribute(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
                factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
            ]
        ),
    ).unique_identifiers
    usable = [
        uid
        for uid in (found or [])
        if _attributes(pool, uid).get("State") in (enums.State.PRE_ACTIVE, enums.State.ACTIVE)
    ]
    return min(usable, key=_uid_order) if usable else None


def _uid_order(uid: str) -> tuple[int, str]:
    return (len(uid), uid)  # numeric order for PyKMIP's integer ids, a fixed order for any other


def _attributes(pool: _Pool, uid: str) -> dict[str, Any]:
    response = pool.call(
        enums.Operation.GET_ATTRIBUTES,
        payloads.GetAttributesRequestPayload(
            unique_identifier=uid,
            attribute_names=["State", "Object Type", "Cryptographic Algorithm", "Cryptographic Length"]
            + ["Cryptographic Usage Mask"],
        ),
    )
    return {a.attribute_name.value: a.attribute_value.value for a in response.attributes}


def _check_key(pool: _Pool, uid: str) -> str:
    """``uid`` if it is an AES-256 key allowed Encrypt and Decrypt; activated if it was still pre-active."""
    try:
        attributes = _attributes(pool, uid)
    except _OperationFailed as exc:
        raise ConfigurationError(f"kmip keystore: key {uid!r} is not usable: {exc}") from None
    mask = attributes.get("Cryptographic Usage Mask") or 0
    if (
        attributes.get("Object Type") != enums.ObjectType.SYMMETRIC_KEY
        or attributes.get("Cryptographic Algorithm") != enums.CryptographicAlgorithm.AES
        or attributes.get("Cryptographic Length") != 256
        or any(not mask & bit.value for bit in _USAGE)
    ):
        raise ConfigurationError(f"kmip keystore: key {uid!r} is not an AES-256 key allowed Encrypt and Decrypt")
    state = attributes.get("State")
    if state == enums.State.PRE_ACTIVE:
        try:
            pool.call(
                enums.Operation.ACTIVATE, payloads.ActivateRequestPayload(unique_identifier=UniqueIdentifier(uid))
            )
        except _OperationFailed:
            state = _attributes(pool, uid).get("State")  # another starter activated it first
        else:
            state = enums.State.ACTIVE
    if state != enums.State.ACTIVE:
        raise ConfigurationError(f"kmip keystore: key {uid!r} is {getattr(state, 'name', state)}, not active")
    return uid


def _positive_int(options: Mapping[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigurationError(f"kmip keystore: {name!r} must be a positive integer")
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigurationError(f"kmip keystore: {name!r} must be a positive integer")
    return number


def _positive_float(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = 0.0
    if isinstance(value, bool) or not number > 0:
        raise ConfigurationError(f"kmip keystore: {name!r} must be a positive number of seconds")
    return number


def _boolean(options: Mapping[str, Any], name: str, default: bool) -> bool:
    # From a TOML file this is a bool; from DONJON_KEYSTORE__OPTIONS__* variables it is a string.
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ConfigurationError(f"kmip keystore: {name!r} must be true or false")
