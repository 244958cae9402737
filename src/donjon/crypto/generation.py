"""Key material generated at provisioning time, from the OS CSPRNG, for orders.

Symmetric keys and passwords come from ``secrets``/``os.urandom``; key pairs from ``cryptography``.
Private keys are PKCS#8 PEM (encrypted with the order's passphrase when one is given), public keys
SubjectPublicKeyInfo PEM, as Barbican produces for RSA.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SYMMETRIC_BITS = {
    "aes": {128, 192, 256},
    "hmacsha1": None,  # None: any multiple of 8 from 64 to 1024
    "hmacsha256": None,
    "hmacsha384": None,
    "hmacsha512": None,
}
RSA_BITS = {2048, 3072, 4096}
EC_CURVES: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}


class UnsupportedGeneration(ValueError):
    """The order asks for an algorithm or size donjon does not generate (the order ends in ERROR 400)."""


def symmetric_key(algorithm: str, bit_length: int, mode: str | None) -> bytes:
    check_symmetric(algorithm, bit_length, mode)
    return os.urandom(bit_length // 8)


def check_symmetric(algorithm: str, bit_length: int, mode: str | None) -> None:
    """UnsupportedGeneration unless a key of this algorithm, size and mode is one donjon generates."""
    algorithm = algorithm.lower()
    if algorithm not in SYMMETRIC_BITS:
        raise UnsupportedGeneration(f"Cannot generate keys for algorithm '{algorithm}'")
    allowed = SYMMETRIC_BITS[algorithm]
    if allowed is not None and (mode or "").lower() == "xts":
        allowed = {2 * b for b in allowed if b != 192}  # XTS keys are two AES keys
    if allowed is None:
        ok = bit_length % 8 == 0 and 64 <= bit_length <= 1024
    else:
        ok = bit_length in allowed
    if not ok:
        raise UnsupportedGeneration(f"Cannot generate a {bit_length}-bit key for algorithm '{algorithm}'")


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes = field(repr=False)
    public_pem: bytes


def key_pair(algorithm: str, bit_length: int, passphrase: str | None) -> KeyPair:
    algorithm = algorithm.lower()
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "rsa":
        if bit_length not in RSA_BITS:
            raise UnsupportedGeneration(f"RSA keys are generated with {sorted(RSA_BITS)} bits, not {bit_length}")
        private = rsa.generate_private_key(public_exponent=65537, key_size=bit_length)
    elif algorithm == "ec":
        curve = EC_CURVES.get(bit_length)
        if curve is None:
            raise UnsupportedGeneration(f"EC keys are generated on P-256, P-384 or P-521, not {bit_length} bits")
        private = ec.generate_private_key(curve)
    else:
        raise UnsupportedGeneration(f"Cannot generate key pairs for algorithm '{algorithm}'")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    return KeyPair(
        private_pem=private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption),
        public_pem=private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


CHARACTER_CLASSES = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digits": string.digits,
    "symbols": "!#$%&()*+,-./:;<=>?@[]^_{|}~",
}


@dataclass(frozen=True)
class PasswordPolicy:
    length: int = 32
    classes: tuple[str, ...] = ("lower", "upper", "digits", "symbols")
    exclude: str = ""

    def alphabets(self) -> list[str]:
        out = []
        for name in self.classes:
            chars = "".join(c for c in CHARACTER_CLASSES[name] if c not in self.exclude)
            if not chars:
                raise UnsupportedGeneration(f"every character of class '{name}' is excluded")
            out.append(chars)
        return out


def password(policy: PasswordPolicy) -> str:
    """A password with at least one character of every requested class, uniformly shuffled."""
    alphabets = policy.alphabets()
    if policy.length < len(alphabets):
        raise UnsupportedGeneration("the length is shorter than the number of required character classes")
    pool = "".join(sorted(set("".join(alphabets))))
    chars = [secrets.choice(a) for a in alphabets]
    chars += [secrets.choice(pool) for _ in range(policy.length - len(chars))]
    # Fisher-Yates with the CSPRNG, so the required characters are not at predictable positions.
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)
