"""Secret stores: where a payload lives once it is accepted.

``database`` is the default: the payload sealed by donjon's envelope (AES-256-GCM under the project's KEK)
in the secrets table. An external store keeps the payload itself and the secret's row keeps only the
store's name and its reference to the object; the secret is always read from the store that holds it.

A store is chosen by configuration (``stores.<name> = {type, options}``); its ``type`` names a factory in
``STORE_TYPES``. Every implementation passes ``tests/store_conformance.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from donjon.errors import ConfigurationError, Unavailable

DATABASE = "database"


@dataclass(frozen=True)
class PayloadInfo:
    """What a store may know about a payload besides its bytes: whose it is and what kind."""

    secret_id: str
    project_id: str
    secret_type: str
    algorithm: str | None = None
    bit_length: int | None = None


class StoreUnavailable(Unavailable):
    """The store could not be reached or refused the operation (503). Carries no payload bytes."""


class PayloadMissing(Exception):
    """The store no longer holds the object the secret's row points at (or it is another secret's)."""


class SecretStore(Protocol):
    kind: str  # the type, as shown by /v1/secret-stores: "kmip", "vault"

    def put(self, info: PayloadInfo, payload: bytes) -> str:
        """Keep ``payload``; return the reference the secret's row stores."""
        ...

    def get(self, info: PayloadInfo, ref: str) -> bytes:
        """The payload kept under ``ref``, checked to belong to ``info``'s secret."""
        ...

    def delete(self, info: PayloadInfo, ref: str) -> None:
        """Destroy the object for good. Deleting what is already gone is not an error."""
        ...

    def close(self) -> None: ...


StoreFactory = Callable[[Mapping[str, Any]], SecretStore]


def _lazy(module: str, class_name: str) -> StoreFactory:
    def factory(options: Mapping[str, Any]) -> SecretStore:
        store: SecretStore = getattr(importlib.import_module(module), class_name).from_options(options)
        return store

    return factory


STORE_TYPES: dict[str, StoreFactory] = {
    "kmip": _lazy("donjon.stores.kmip", "KmipSecretStore"),
    "vault": _lazy("donjon.stores.vault", "VaultSecretStore"),
}


def open_store(type_: str, options: Mapping[str, Any]) -> SecretStore:
    try:
        factory = STORE_TYPES[type_]
    except KeyError:
        known = ", ".join(sorted(STORE_TYPES))
        raise ConfigurationError(
            f"unknown secret store type {type_!r} (known: {known}; 'database' is built in)"
        ) from None
    return factory(options)
