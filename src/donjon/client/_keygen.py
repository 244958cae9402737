"""Client-side key generation and encodings, for backends that cannot generate a key themselves.

The only SDK module using cryptography's hazmat layer. Symmetric keys come from ``secrets`` (the OS CSPRNG);
key pairs are PEM: PKCS#8 private key, SubjectPublicKeyInfo public key, as donjon's and Barbican's orders.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from donjon.client._errors import InvalidRequest

SYMMETRIC_SIZES = {"aes": (128, 192, 256)}
_CURVES: dict[int, type[ec.EllipticCurve]] = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}


def symmetric(algorithm: str, bit_length: int) -> bytes:
    algorithm = algorithm.lower()
    if algorithm == "aes":
        if bit_length not in SYMMETRIC_SIZES["aes"]:
            raise InvalidRequest(f"AES keys are 128, 192 or 256 bits, not {bit_length}")
    elif algorithm.startswith("hmac"):
        if bit_length < 64 or bit_length > 1024 or bit_length % 8:
            raise InvalidRequest(f"HMAC keys are 64 to 1024 bits in whole bytes, not {bit_length}")
    else:
        raise InvalidRequest(f"cannot generate a symmetric {algorithm!r} key (aes, hmacsha1/256/384/512)")
    return secrets.token_bytes(bit_length // 8)


def key_pair(algorithm: str, bit_length: int) -> tuple[bytes, bytes]:
    """``(private PEM, public PEM)``."""
    algorithm = algorithm.lower()
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "rsa":
        if bit_length not in (2048, 3072, 4096):
            raise InvalidRequest(f"RSA keys are 2048, 3072 or 4096 bits, not {bit_length}")
        private = rsa.generate_private_key(public_exponent=65537, key_size=bit_length)
    elif algorithm == "ec":
        if bit_length not in _CURVES:
            raise InvalidRequest(f"EC keys are 256, 384 or 521 bits (P-256/384/521), not {bit_length}")
        private = ec.generate_private_key(_CURVES[bit_length]())
    else:
        raise InvalidRequest(f"cannot generate a {algorithm!r} key pair (rsa, ec)")
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def pem_to_der(data: bytes) -> bytes | None:
    """The DER inside a PEM private key, public key or certificate; ``None`` if ``data`` is not PEM."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        return None
    try:
        return serialization.load_pem_private_key(data, password=None).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    except (ValueError, TypeError):
        pass
    try:
        return serialization.load_pem_public_key(data).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError):
        pass
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    except ValueError:
        return None


def der_to_pem(der: bytes, object_type: str) -> bytes:
    """PEM for a DER private key (PKCS#8), public key (SPKI) or certificate."""
    if object_type == "private":
        return serialization.load_der_private_key(der, password=None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    if object_type == "public":
        return serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    from cryptography import x509

    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
