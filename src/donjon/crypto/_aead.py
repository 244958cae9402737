"""The one module that touches cryptography's hazmat layer: AES-256-GCM with a versioned blob format.

Blob: ``version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)``. The version byte is also
fed to the associated data, so a blob cannot be re-labelled as another format. Every failure to open -
wrong key, wrong associated data, truncation, unknown version - is the same opaque ``DecryptionFailed``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_VERSION = b"\x01"


class DecryptionFailed(Exception):
    """A blob did not open. Deliberately carries no detail."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


def generate_key() -> bytes:
    """A fresh 256-bit key from the OS CSPRNG."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, _VERSION + associated_data)


def open_sealed(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + _TAG_BYTES or blob[:1] != _VERSION:
        raise DecryptionFailed
    nonce = blob[1 : 1 + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + NONCE_BYTES :], _VERSION + associated_data)
    except InvalidTag:
        raise DecryptionFailed from None
