"""Recognising key and certificate payloads, and moving them between PEM and DER without changing a byte.

A KMIP server keeps private keys, public keys and certificates as typed DER objects. A payload goes there
typed only when converting it back gives the exact bytes the client stored (donjon serves payloads
byte-exact); anything else - an encrypted private key, PEM with other line breaks, PKCS#1 - is kept opaque.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

_PEM, _DER = serialization.Encoding.PEM, serialization.Encoding.DER


@dataclass(frozen=True)
class TypedDer:
    """A payload as a KMIP server wants it: DER, its algorithm and size, and how to give it back."""

    der: bytes
    algorithm: str  # "RSA", "EC", "DSA" for keys; "X509" for certificates
    bit_length: int
    pem: bool  # the client's bytes were PEM: convert back on the way out


def _algorithm(key: object) -> tuple[str, int] | None:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return "DSA", key.key_size
    return None


def private_key(payload: bytes) -> TypedDer | None:
    """Unencrypted PKCS#8 private key, PEM or DER, that re-encodes to exactly ``payload``."""
    for pem in (True, False):
        try:
            key = (serialization.load_pem_private_key if pem else serialization.load_der_private_key)(
                payload, password=None
            )
        except (ValueError, TypeError):
            continue
        alg = _algorithm(key)
        if alg is None:
            return None
        nothing = serialization.NoEncryption()
        fmt = serialization.PrivateFormat.PKCS8
        if key.private_bytes(_PEM if pem else _DER, fmt, nothing) != payload:
            return None
        return TypedDer(key.private_bytes(_DER, fmt, nothing), alg[0], alg[1], pem)
    return None


def public_key(payload: bytes) -> TypedDer | None:
    """SubjectPublicKeyInfo, PEM or DER, that re-encodes to exactly ``payload``."""
    for pem in (True, False):
        try:
            key = (serialization.load_pem_public_key if pem else serialization.load_der_public_key)(payload)
        except (ValueError, TypeError):
            continue
        alg = _algorithm(key)
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        if alg is None or key.public_bytes(_PEM if pem else _DER, fmt) != payload:
            return None
        return TypedDer(key.public_bytes(_DER, fmt), alg[0], alg[1], pem)
    return None


def certificate(payload: bytes) -> TypedDer | None:
    """An X.509 certificate, PEM or DER, that re-encodes to exactly ``payload``."""
    for pem in (True, False):
        try:
            cert = (x509.load_pem_x509_certificate if pem else x509.load_der_x509_certificate)(payload)
        except ValueError:
            continue
        if cert.public_bytes(_PEM if pem else _DER) != payload:
            return None
        return TypedDer(cert.public_bytes(_DER), "X509", 0, pem)
    return None


def private_key_from_der(der: bytes, pem: bool) -> bytes:
    if not pem:
        return der
    key = serialization.load_der_private_key(der, password=None)
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_key_from_der(der: bytes, pem: bool) -> bytes:
    if not pem:
        return der
    return serialization.load_der_public_key(der).public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_from_der(der: bytes, pem: bool) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(_PEM) if pem else der


def pem_to_der(data: bytes) -> bytes | None:
    """The DER inside a PEM private key (PKCS#8), public key (SPKI) or certificate; None if ``data`` is not one.

    Unlike the checks above, any PEM that parses will do: Castellan's objects hold DER and its Barbican driver
    converts the same way.
    """
    if not data.lstrip().startswith(b"-----BEGIN"):
        return None
    try:
        return serialization.load_pem_private_key(data, password=None).private_bytes(
            _DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    except (ValueError, TypeError):
        pass
    try:
        return serialization.load_pem_public_key(data).public_bytes(
            _DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError):
        pass
    try:
        return x509.load_pem_x509_certificate(data).public_bytes(_DER)
    except ValueError:
        return None


def der_to_pem(der: bytes, object_type: str) -> bytes:
    """PEM for a DER ``private`` key (PKCS#8), ``public`` key (SPKI) or ``certificate``; ValueError if not one."""
    if object_type == "private":
        return private_key_from_der(der, pem=True)
    if object_type == "public":
        return public_key_from_der(der, pem=True)
    return certificate_from_der(der, pem=True)
