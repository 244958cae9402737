"""Key generation for the backends that cannot generate a key themselves (or not this kind).

The keys come from ``donjon.crypto.generation``, the generator the server's orders use, so every backend
accepts the same algorithms and sizes (AES 128/192/256, 256/512 for XTS; HMAC 64-1024 bits; RSA 2048/3072/4096;
EC P-256/384/521). It imports cryptography and nothing of the server. A refusal is the SDK's ``InvalidRequest``.
"""

from __future__ import annotations

from donjon.client._errors import InvalidRequest
from donjon.crypto import generation


def check_symmetric(algorithm: str, bit_length: int, mode: str | None = None) -> None:
    """For a backend generating the key itself: ``InvalidRequest`` for a size donjon would refuse too."""
    try:
        generation.check_symmetric(algorithm, bit_length, mode)
    except generation.UnsupportedGeneration as exc:
        raise InvalidRequest(str(exc)) from None


def symmetric_key(algorithm: str, bit_length: int, mode: str | None = None) -> bytes:
    try:
        return generation.symmetric_key(algorithm, bit_length, mode)
    except generation.UnsupportedGeneration as exc:
        raise InvalidRequest(str(exc)) from None


def key_pair(algorithm: str, bit_length: int) -> tuple[bytes, bytes]:
    """``(private PEM (PKCS#8), public PEM (SubjectPublicKeyInfo))``."""
    try:
        pair = generation.key_pair(algorithm, bit_length, passphrase=None)
    except generation.UnsupportedGeneration as exc:
        raise InvalidRequest(str(exc)) from None
    return pair.private_pem, pair.public_pem
