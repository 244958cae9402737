"""A transit key ring: every version of one named key, its settings, and the document it is stored as.

The ring is the payload of a donjon secret (services/transit.py), so it is sealed under the project's KEK
like every payload; this module only turns it into bytes and back, and answers Vault's key-info shape.
Key material is kept out of every ``repr``.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from donjon.crypto import transit as primitives
from donjon.errors import InvalidInput

_FORMAT = "donjon-transit-ring/1"


@dataclass(frozen=True)
class KeyVersion:
    material: bytes = field(repr=False)
    # Vault keeps a separate HMAC key per version, for every key type (hmac works with signing keys too).
    hmac_key: bytes = field(repr=False)
    created_ns: int = 0  # Unix time in nanoseconds

    @property
    def created_unix(self) -> int:
        return self.created_ns // 1_000_000_000

    @property
    def created_rfc3339(self) -> str:
        """Go's RFC3339Nano, as Vault prints an asymmetric key's ``creation_time`` (trailing zeros trimmed)."""
        seconds, nanos = divmod(self.created_ns, 1_000_000_000)
        base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        fraction = f"{nanos:09d}".rstrip("0")
        return f"{base}.{fraction}Z" if fraction else f"{base}Z"


@dataclass
class KeyRing:
    name: str
    key_type: str
    derived: bool = False
    deletion_allowed: bool = False
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    min_available_version: int = 0
    latest_version: int = 0
    versions: dict[int, KeyVersion] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> primitives.KeyType:
        return primitives.KEY_TYPES[self.key_type]

    def add_version(self, now_ns: int) -> int:
        self.latest_version += 1
        self.versions[self.latest_version] = KeyVersion(primitives.generate(self.key_type), os.urandom(32), now_ns)
        return self.latest_version

    def version(self, number: int) -> KeyVersion:
        """A version that exists and has not been trimmed away (callers check the policy minimums first)."""
        found = self.versions.get(number)
        if found is None:
            raise InvalidInput("invalid key version")
        return found

    def encryption_version(self, requested: int) -> int:
        """The version to encrypt (or sign, or HMAC) with: ``requested``, or the latest for 0."""
        if requested < 0:
            raise InvalidInput("requested version for encryption is negative")
        if requested == 0:
            return self.latest_version
        if requested > self.latest_version:
            raise InvalidInput("requested version for encryption is higher than the latest key version")
        if requested < self.min_encryption_version:
            raise InvalidInput("requested version for encryption is less than the minimum encryption key version")
        return requested

    def check_decryption_version(self, number: int) -> None:
        if number > self.latest_version:
            raise InvalidInput("invalid ciphertext: version is too new")
        if number < self.min_decryption_version or number not in self.versions:
            raise InvalidInput("invalid ciphertext: version is disallowed by policy (too old)")

    # --- Vault's key info ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """``data`` of ``GET transit/keys/<name>``, key for key as OpenBao 2.7.2 answers it."""
        kind = self.kind
        keys: dict[str, Any] = {}
        for number in sorted(self.versions):
            version = self.versions[number]
            if kind.asymmetric:
                keys[str(number)] = {
                    "certificate_chain": "",
                    "creation_time": version.created_rfc3339,
                    "name": kind.public_name,
                    "public_key": primitives.public_key(self.key_type, version.material),
                }
            else:
                keys[str(number)] = version.created_unix
        data: dict[str, Any] = {
            "allow_plaintext_backup": False,
            "auto_rotate_period": 0,
            "deletion_allowed": self.deletion_allowed,
            "derived": self.derived,
            "exportable": False,
            "imported_key": False,
            "keys": keys,
            "latest_version": self.latest_version,
            "min_available_version": self.min_available_version,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "name": self.name,
            "soft_deleted": False,
            "supports_decryption": kind.encrypts,
            "supports_derivation": kind.derivable,
            "supports_encryption": kind.encrypts,
            "supports_signing": kind.signs,
            "type": self.key_type,
        }
        if self.derived:
            data["kdf"] = "hkdf_sha256"
            data["convergent_encryption"] = False
        return dict(sorted(data.items()))  # Go encodes a map with its keys sorted

    # --- the stored document ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        doc = {
            "format": _FORMAT,
            "name": self.name,
            "type": self.key_type,
            "derived": self.derived,
            "deletion_allowed": self.deletion_allowed,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "min_available_version": self.min_available_version,
            "latest_version": self.latest_version,
            "versions": {
                str(n): {
                    "key": _b64(v.material),
                    "hmac_key": _b64(v.hmac_key),
                    "created_ns": v.created_ns,
                }
                for n, v in sorted(self.versions.items())
            },
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyRing:
        """The ring stored in ``raw``; ValueError (with no detail of the content) if it is not one."""
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc["type"] not in primitives.KEY_TYPES:
                raise ValueError
            return cls(
                name=str(doc["name"]),
                key_type=str(doc["type"]),
                derived=bool(doc["derived"]),
                deletion_allowed=bool(doc["deletion_allowed"]),
                min_decryption_version=int(doc["min_decryption_version"]),
                min_encryption_version=int(doc["min_encryption_version"]),
                min_available_version=int(doc["min_available_version"]),
                latest_version=int(doc["latest_version"]),
                versions={
                    int(n): KeyVersion(
                        base64.b64decode(v["key"]), base64.b64decode(v["hmac_key"]), int(v["created_ns"])
                    )
                    for n, v in doc["versions"].items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError("not a transit key ring") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
