"""Secret stores: where a payload lives once it is accepted.

``database`` (donjon.stores.database) is built in and the default: the payload sealed by donjon's envelope
(AES-256-GCM under the project's KEK) into the secret's own row. An external store keeps the payload itself
and the secret's row keeps only the store's name and its reference to the object; the secret is always read
from the store that holds it. Every store answers the same ``SecretStore`` protocol, over ``StoredPayload``:
what the secret's row records of its payload (the ciphertext xor a reference: migration 0010's CHECK).

An external store is chosen by configuration (``stores.<name> = {type, options}``); its ``type`` names a
factory in ``STORE_TYPES``. Every implementation passes ``tests/store_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from donjon.errors import Unavailable
from donjon.plugins import Factory, lazy, open_backend

if TYPE_CHECKING:
    from sqlalchemy import Connection

DATABASE = "database"


@dataclass(frozen=True)
class PayloadInfo:
    """What a store may know about a payload besides its bytes: whose it is and what kind."""

    secret_id: str
    project_id: str
    secret_type: str
    algorithm: str | None = None
    bit_length: int | None = None
    # Which payload of a rotated secret (donjon extension; only the database store keeps versions). The
    # database store binds it into the associated data from version 2 on.
    version: int = 1


@dataclass(frozen=True)
class StoredPayload:
    """What a secret's row keeps of its payload: an external store's reference to the object it holds, or
    the payload itself sealed under a project KEK (the database store). Sealed bytes stay out of ``repr``."""

    ref: str | None = None
    kek_id: str | None = None
    ciphertext: bytes | None = field(default=None, repr=False)


class StoreUnavailable(Unavailable):
    """The store could not be reached or refused the operation (503). Carries no payload bytes."""


class PayloadMissing(Exception):
    """The store no longer holds the object the secret's row points at (or it is another secret's)."""


class SecretStore(Protocol):
    kind: str  # the type, as shown by /v1/secret-stores: "database", "kmip", "vault"

    def put(self, info: PayloadInfo, payload: bytes) -> StoredPayload:
        """Keep ``payload``; return what the secret's row stores of it."""
        ...

    def get(self, info: PayloadInfo, stored: StoredPayload) -> bytes:
        """The payload ``stored`` stands for, checked to belong to ``info``'s secret (and version)."""
        ...

    def hold(self, conn: Connection, info: PayloadInfo, stored: StoredPayload) -> None:
        """First in the write transaction that records ``stored``: refuse (and roll back) what can no longer
        be opened once committed. Only the database store has something to check (ProjectKeys.hold)."""
        ...

    def delete(self, info: PayloadInfo, stored: StoredPayload) -> None:
        """Destroy the object for good. Deleting what is already gone is not an error."""
        ...

    def close(self) -> None: ...


def reference(stored: StoredPayload) -> str:
    """An external store's reference in ``stored``; a row that has none points at no object of that store."""
    if stored.ref is None:
        raise PayloadMissing("the secret's row holds no reference to an external object")
    return stored.ref


class ExternalStore:
    """What every external store shares: its objects exist once ``put`` returns, so a write has nothing to hold."""

    def hold(self, conn: Connection, info: PayloadInfo, stored: StoredPayload) -> None:
        return None


# External stores only: the database store needs the project keys, so donjon.services.payload_store builds it.
STORE_TYPES: dict[str, Factory[SecretStore]] = {
    "kmip": lazy("donjon.stores.kmip", "KmipSecretStore"),
    "vault": lazy("donjon.stores.vault", "VaultSecretStore"),
}


def open_store(type_: str, options: Mapping[str, Any]) -> SecretStore:
    return open_backend(STORE_TYPES, type_, options, "secret store; 'database' is built in")
