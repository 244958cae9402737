"""The primitives of the Vault-compatible transit engine: key generation, AEAD, derivation, signatures.

Each key type is Vault's: ``aes256-gcm96`` and ``chacha20-poly1305`` (AEAD, a fresh 96-bit nonce per
message, blob ``nonce || ciphertext || tag`` as Vault lays it out), ``ed25519``, ``ecdsa-p256``/``p384``
and ``rsa-2048``/``3072``/``4096`` (signing; RSA also encrypts with OAEP-SHA256 as Vault does). A key's
material is raw bytes for symmetric keys and ed25519's 32-byte seed, PKCS#8 DER for ECDSA and RSA.

Failures that depend on the key or the ciphertext are one opaque ``DecryptionFailed``: the caller learns
nothing about the key. Key material is never put into an exception or a repr here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as _hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from donjon.crypto._aead import DecryptionFailed

NONCE_BYTES = 12
TAG_BYTES = 16


@dataclass(frozen=True)
class KeyType:
    name: str
    encrypts: bool
    signs: bool
    derivable: bool
    # The ``name`` Vault shows beside an asymmetric key's public key ("P-256", "ed25519", "rsa-2048").
    public_name: str | None = None

    @property
    def asymmetric(self) -> bool:
        return self.public_name is not None


KEY_TYPES: dict[str, KeyType] = {
    t.name: t
    for t in (
        KeyType("aes256-gcm96", encrypts=True, signs=False, derivable=True),
        KeyType("chacha20-poly1305", encrypts=True, signs=False, derivable=True),
        KeyType("ed25519", encrypts=False, signs=True, derivable=True, public_name="ed25519"),
        KeyType("ecdsa-p256", encrypts=False, signs=True, derivable=False, public_name="P-256"),
        KeyType("ecdsa-p384", encrypts=False, signs=True, derivable=False, public_name="P-384"),
        KeyType("rsa-2048", encrypts=True, signs=True, derivable=False, public_name="rsa-2048"),
        KeyType("rsa-3072", encrypts=True, signs=True, derivable=False, public_name="rsa-3072"),
        KeyType("rsa-4096", encrypts=True, signs=True, derivable=False, public_name="rsa-4096"),
    )
}

_CURVES: dict[str, ec.EllipticCurve] = {"ecdsa-p256": ec.SECP256R1(), "ecdsa-p384": ec.SECP384R1()}

# Vault's hash algorithm names (hmac, sign, verify, hash).
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
    "sha3-224": hashes.SHA3_224,
    "sha3-256": hashes.SHA3_256,
    "sha3-384": hashes.SHA3_384,
    "sha3-512": hashes.SHA3_512,
}
_HASHLIB = {
    "sha1": "sha1",
    "sha2-224": "sha224",
    "sha2-256": "sha256",
    "sha2-384": "sha384",
    "sha2-512": "sha512",
    "sha3-224": "sha3_224",
    "sha3-256": "sha3_256",
    "sha3-384": "sha3_384",
    "sha3-512": "sha3_512",
}
HASH_ALGORITHMS = tuple(_HASHES)


class InvalidLength(ValueError):
    """A ciphertext too short to hold a nonce and a tag (Vault: ``invalid ciphertext length``)."""


def generate(key_type: str) -> bytes:
    """Fresh key material of ``key_type`` (raw bytes or PKCS#8 DER), from the OS CSPRNG."""
    if key_type in ("aes256-gcm96", "chacha20-poly1305"):
        return os.urandom(32)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type in _CURVES:
        private = ec.generate_private_key(_CURVES[key_type])
    elif key_type.startswith("rsa-") and key_type in KEY_TYPES:
        private = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    else:
        raise ValueError(f"unknown key type {key_type}")
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key(key_type: str, material: bytes) -> str:
    """The public key as Vault shows it: base64 of the raw key for ed25519, PEM otherwise."""
    if key_type == "ed25519":
        raw = (
            ed25519.Ed25519PrivateKey.from_private_bytes(material)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return base64.b64encode(raw).decode("ascii")
    private = serialization.load_der_private_key(material, password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def derive(key: bytes, context: bytes) -> bytes:
    """A per-context key, as Vault's ``derived`` keys (KDF ``hkdf_sha256``: no salt, the context as info)."""
    return HKDF(algorithm=hashes.SHA256(), length=len(key), salt=None, info=context).derive(key)


def _aead(key_type: str, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return AESGCM(key) if key_type == "aes256-gcm96" else ChaCha20Poly1305(key)


def encrypt(key_type: str, material: bytes, plaintext: bytes, associated_data: bytes | None) -> bytes:
    if key_type.startswith("rsa-"):
        private = serialization.load_der_private_key(material, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        return private.public_key().encrypt(plaintext, _oaep())
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _aead(key_type, material).encrypt(nonce, plaintext, associated_data or None)


def decrypt(key_type: str, material: bytes, blob: bytes, associated_data: bytes | None) -> bytes:
    """The plaintext; InvalidLength for a blob too short, DecryptionFailed for any other failure."""
    if key_type.startswith("rsa-"):
        private = serialization.load_der_private_key(material, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        try:
            return private.decrypt(blob, _oaep())
        except ValueError:
            raise DecryptionFailed from None
    if len(blob) < NONCE_BYTES:  # Vault's test: shorter than a nonce; a missing tag fails to open
        raise InvalidLength("invalid ciphertext length")
    try:
        return _aead(key_type, material).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data or None)
    except InvalidTag:
        raise DecryptionFailed from None


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def hmac(key: bytes, algorithm: str, data: bytes) -> bytes:
    return _hmac.new(key, data, _HASHLIB[algorithm]).digest()


def digest(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(_HASHLIB[algorithm], data).digest()


@dataclass(frozen=True)
class SignOptions:
    hash_algorithm: str = "sha2-256"
    prehashed: bool = False
    signature_algorithm: str = "pss"  # RSA: "pss" or "pkcs1v15"
    marshaling_algorithm: str = "asn1"  # ECDSA: "asn1" or "jws" (r || s)


def sign(key_type: str, material: bytes, data: bytes, options: SignOptions) -> bytes:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(material).sign(data)
    algorithm = _HASHES[options.hash_algorithm]()
    digest_bytes = data if options.prehashed else digest(options.hash_algorithm, data)
    private = serialization.load_der_private_key(material, password=None)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        der = private.sign(digest_bytes, ec.ECDSA(utils.Prehashed(algorithm)))
        if options.marshaling_algorithm != "jws":
            return der
        r, s = utils.decode_dss_signature(der)
        size = (private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.sign(digest_bytes, _rsa_padding(options, algorithm, signing=True), utils.Prehashed(algorithm))


def verify(key_type: str, material: bytes, data: bytes, signature: bytes, options: SignOptions) -> bool:
    try:
        if key_type == "ed25519":
            ed25519.Ed25519PrivateKey.from_private_bytes(material).public_key().verify(signature, data)
            return True
        algorithm = _HASHES[options.hash_algorithm]()
        digest_bytes = data if options.prehashed else digest(options.hash_algorithm, data)
        private = serialization.load_der_private_key(material, password=None)
        if isinstance(private, ec.EllipticCurvePrivateKey):
            if options.marshaling_algorithm == "jws":
                size = (private.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    return False
                r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
                signature = utils.encode_dss_signature(r, s)
            private.public_key().verify(signature, digest_bytes, ec.ECDSA(utils.Prehashed(algorithm)))
            return True
        assert isinstance(private, rsa.RSAPrivateKey)
        private.public_key().verify(
            signature, digest_bytes, _rsa_padding(options, algorithm, signing=False), utils.Prehashed(algorithm)
        )
        return True
    except (InvalidSignature, ValueError):
        return False


def _rsa_padding(options: SignOptions, algorithm: hashes.HashAlgorithm, *, signing: bool) -> padding.AsymmetricPadding:
    if options.signature_algorithm == "pkcs1v15":
        return padding.PKCS1v15()
    # Go's PSSSaltLengthAuto: the longest salt when signing, any salt length when verifying.
    salt = padding.PSS.MAX_LENGTH if signing else padding.PSS.AUTO
    return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=salt)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return _hmac.compare_digest(a, b)
