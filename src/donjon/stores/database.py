"""The database store, built in: a payload sealed under its project's KEK into the secret's own row.

AES-256-GCM with the secret's identity as associated data (donjon.crypto.envelope: secret id, project id,
and from version 2 on the version), so a ciphertext copied onto another row fails to open. The KEKs come
from the project keys (donjon.services.project_keys, given here as ``ProjectKeyring``: stores sit below
services); the write that records a payload holds its KEK (``hold``) so a KEK rotation that retired it
meanwhile rolls the write back, and ``ProjectKeys.retry_if_retired`` seals again under the new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from donjon.crypto.envelope import open_payload, seal_payload
from donjon.stores import DATABASE, PayloadInfo, PayloadMissing, StoredPayload

if TYPE_CHECKING:
    from sqlalchemy import Connection


class ActiveKek(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def key(self) -> bytes: ...


class ProjectKeyring(Protocol):
    """What the database store needs of donjon.services.project_keys.ProjectKeys."""

    def active(self, project_id: str) -> ActiveKek: ...

    def get(self, project_id: str, kek_id: str) -> bytes: ...

    def hold(self, conn: Connection, project_id: str, kek_id: str) -> None: ...


class DatabaseSecretStore:
    kind = DATABASE

    def __init__(self, keys: ProjectKeyring) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return "DatabaseSecretStore()"

    def put(self, info: PayloadInfo, payload: bytes) -> StoredPayload:
        """Seal under the project's active KEK (no database write: the caller's row carries the result)."""
        kek = self._keys.active(info.project_id)
        return StoredPayload(kek_id=kek.id, ciphertext=seal(kek.key, info, payload))

    def get(self, info: PayloadInfo, stored: StoredPayload) -> bytes:
        if stored.ciphertext is None:
            raise PayloadMissing(f"secret {info.secret_id} has no sealed payload in its row")
        if stored.kek_id is None:  # its KEK was destroyed (purge-project): nothing can open it any more
            raise PayloadMissing(f"the key that sealed secret {info.secret_id} was destroyed")
        return open_sealed(self._keys.get(info.project_id, stored.kek_id), info, stored.ciphertext)

    def hold(self, conn: Connection, info: PayloadInfo, stored: StoredPayload) -> None:
        if stored.kek_id is not None:
            self._keys.hold(conn, info.project_id, stored.kek_id)

    def delete(self, info: PayloadInfo, stored: StoredPayload) -> None:
        return None  # the ciphertext lives in the secret's row and goes with it

    def close(self) -> None:
        return None


def seal(kek: bytes, info: PayloadInfo, payload: bytes) -> bytes:
    """``payload`` sealed under ``kek``, bound to ``info``'s secret, project and version."""
    return seal_payload(kek, payload, secret_id=info.secret_id, project_id=info.project_id, version=info.version)


def open_sealed(kek: bytes, info: PayloadInfo, ciphertext: bytes) -> bytes:
    """The payload ``ciphertext`` seals for ``info``'s secret, project and version (DecryptionFailed if not)."""
    return open_payload(kek, ciphertext, secret_id=info.secret_id, project_id=info.project_id, version=info.version)


def reseal(
    old_kek: bytes, new_kek: bytes, ciphertext: bytes, *, secret_id: str, project_id: str, version: int
) -> bytes:
    """A KEK rotation's step: the same payload, bound to the same identity, sealed under ``new_kek``."""
    plaintext = open_payload(old_kek, ciphertext, secret_id=secret_id, project_id=project_id, version=version)
    return seal_payload(new_kek, plaintext, secret_id=secret_id, project_id=project_id, version=version)
