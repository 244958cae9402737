"""Keystores hold the root of trust and wrap/unwrap project KEKs with it. The root key never leaves them.

A keystore is chosen by configuration: ``type`` names a factory in ``KEYSTORES``, which validates its own
``options``. Every implementation must pass ``tests/keystore_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from donjon.plugins import Factory, lazy, open_backend
from donjon.wrapped_key import WrappedKey as WrappedKey  # re-exported: the keystores make and open it


class Keystore(Protocol):
    def root_key_id(self) -> str:
        """Identifier of the root key that new wraps use."""
        ...

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        """Wrap ``key`` under the current root key, bound to ``context`` (associated data)."""
        ...

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """Unwrap with the root key named in ``wrapped``; raises ``DecryptionFailed`` on any mismatch."""
        ...

    def close(self) -> None:
        """Release sessions or handles."""
        ...


KEYSTORES: dict[str, Factory[Keystore]] = {
    "file": lazy("donjon.keystores.file", "FileKeystore"),
    "pkcs11": lazy("donjon.keystores.pkcs11", "Pkcs11Keystore"),
    "nss": lazy("donjon.keystores.nss", "NssKeystore"),
    "kmip": lazy("donjon.keystores.kmip", "KmipKeystore"),
    "vault": lazy("donjon.keystores.vault", "VaultKeystore"),
}


def open_keystore(type_: str, options: Mapping[str, Any]) -> Keystore:
    return open_backend(KEYSTORES, type_, options, "keystore")
