"""Keystores hold the root of trust and wrap/unwrap project KEKs with it. The root key never leaves them.

A keystore is chosen by configuration: ``type`` names a factory in ``KEYSTORES``, which validates its own
``options``. Every implementation must pass ``tests/keystore_conformance.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from donjon.errors import ConfigurationError
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


KeystoreFactory = Callable[[Mapping[str, Any]], Keystore]


def _lazy(module: str, class_name: str) -> KeystoreFactory:
    """A factory importing its implementation on first use: a backend's library is only needed if configured."""

    def factory(options: Mapping[str, Any]) -> Keystore:
        cls = getattr(importlib.import_module(module), class_name)
        keystore: Keystore = cls.from_options(options)
        return keystore

    return factory


KEYSTORES: dict[str, KeystoreFactory] = {
    "file": _lazy("donjon.keystores.file", "FileKeystore"),
    "pkcs11": _lazy("donjon.keystores.pkcs11", "Pkcs11Keystore"),
    "nss": _lazy("donjon.keystores.nss", "NssKeystore"),
    "kmip": _lazy("donjon.keystores.kmip", "KmipKeystore"),
    "vault": _lazy("donjon.keystores.vault", "VaultKeystore"),
}


def open_keystore(type_: str, options: Mapping[str, Any]) -> Keystore:
    try:
        factory = KEYSTORES[type_]
    except KeyError:
        known = ", ".join(sorted(KEYSTORES))
        raise ConfigurationError(f"unknown keystore type {type_!r} (known: {known})") from None
    return factory(options)
