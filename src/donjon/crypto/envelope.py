"""Sealing payloads and KEKs with the identity they belong to as associated data.

A payload's associated data names its secret and project, so a ciphertext copied onto another row (another
secret, or the same id in another project) fails to open instead of being served as the wrong secret.
"""

from __future__ import annotations

from donjon.crypto import _aead

_PAYLOAD_LABEL = b"donjon/payload/v1"
_KEK_LABEL = b"donjon/kek/v1"
_ORDER_LABEL = b"donjon/order-params/v1"
# Version 2 and later of a rotated secret's payload also name their version; version 1 keeps the original
# associated data above, so payloads sealed before versions existed still open.
_VERSIONED_PAYLOAD_LABEL = b"donjon/payload-version/v1"


def _identity(label: bytes, *parts: str) -> bytes:
    # NUL-separated: ids and project ids never contain NUL, so the encoding is unambiguous.
    return b"\x00".join([label, *(p.encode("utf-8") for p in parts)])


def _payload_identity(secret_id: str, project_id: str, version: int) -> bytes:
    if version == 1:
        return _identity(_PAYLOAD_LABEL, secret_id, project_id)
    if version < 1:
        raise ValueError("payload versions start at 1")
    return _identity(_VERSIONED_PAYLOAD_LABEL, secret_id, project_id, str(version))


def seal_payload(kek: bytes, plaintext: bytes, *, secret_id: str, project_id: str, version: int = 1) -> bytes:
    return _aead.seal(kek, plaintext, _payload_identity(secret_id, project_id, version))


def open_payload(kek: bytes, blob: bytes, *, secret_id: str, project_id: str, version: int = 1) -> bytes:
    return _aead.open_sealed(kek, blob, _payload_identity(secret_id, project_id, version))


def seal_order_params(kek: bytes, plaintext: bytes, *, order_id: str, project_id: str) -> bytes:
    return _aead.seal(kek, plaintext, _identity(_ORDER_LABEL, order_id, project_id))


def open_order_params(kek: bytes, blob: bytes, *, order_id: str, project_id: str) -> bytes:
    return _aead.open_sealed(kek, blob, _identity(_ORDER_LABEL, order_id, project_id))


def kek_context(*, kek_id: str, project_id: str) -> bytes:
    """Associated data a keystore binds a wrapped KEK to."""
    return _identity(_KEK_LABEL, kek_id, project_id)


def new_kek() -> bytes:
    return _aead.generate_key()
