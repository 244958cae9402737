"""The one payload path: every payload is put into, read from, held for and destroyed in its secret store here.

A secret's row names the store that holds its payload (no name: the built-in database store, which seals the
payload into the row) and keeps what that store returned (``StoredPayload``). Creating a secret, a two-step
PUT, an order's secrets, reading (plain, limited, wrapped, a previous version), rotating to a new version and
moving between stores all go through ``PayloadStore``; a KEK rotation reseals through
``donjon.stores.database.reseal``. New payloads are written in ``retry_if_retired``: a KEK rotation that
retires the KEK a payload was sealed under before its row committed makes the write seal again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from sqlalchemy import Connection

from donjon.blocking import may_block
from donjon.errors import NotFound, Unavailable
from donjon.services.project_keys import ProjectKeys
from donjon.services.stores import StoreRegistry
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE, PayloadInfo, PayloadMissing, SecretStore, StoredPayload
from donjon.stores.database import DatabaseSecretStore

R = TypeVar("R")

NO_PAYLOAD = "Not Found. Sorry but your secret has no payload."
GONE_FROM_STORE = "Not Found. The secret's payload is no longer in its secret store."


def payload_info(record: SecretRecord, version: int | None = None) -> PayloadInfo:
    """Whose payload this is: what a store binds it to (``version``: the current one unless given)."""
    return PayloadInfo(
        record.id,
        record.project_id,
        record.secret_type,
        record.algorithm,
        record.bit_length,
        record.version if version is None else version,
    )


def stored_payload(record: SecretRecord) -> StoredPayload:
    return StoredPayload(record.store_ref, record.kek_id, record.ciphertext)


def with_payload(record: SecretRecord, store: str, stored: StoredPayload) -> SecretRecord:
    """``record`` pointing at a payload kept by ``store``: the row's store column is NULL for the database store."""
    return replace(
        record,
        store=None if store == DATABASE else store,
        store_ref=stored.ref,
        kek_id=stored.kek_id,
        ciphertext=stored.ciphertext,
    )


class PayloadStore:
    def __init__(self, keys: ProjectKeys, registry: StoreRegistry | None = None) -> None:
        self._keys = keys
        self.database = DatabaseSecretStore(keys)
        self.registry = registry

    def store(self, name: str | None) -> SecretStore:
        """The store a row names (None, as the column has it, or ``database``: the built-in one)."""
        if name is None or name == DATABASE:
            return self.database
        may_block("an external secret store")
        if self.registry is None:
            raise Unavailable(f"The secret store {name!r} that holds this secret is not configured.")
        return self.registry.store(name)

    def retry_if_retired(self, attempt: Callable[[], R]) -> R:
        """Run ``attempt`` (which puts payloads and writes their rows, holding them); once more if a KEK
        rotation retired the KEK it sealed under meanwhile (ProjectKeys.retry_if_retired)."""
        return self._keys.retry_if_retired(attempt)

    def put(self, record: SecretRecord, store: str, payload: bytes) -> SecretRecord:
        """Keep ``payload`` in ``store`` for ``record``'s secret; the returned record points at it. A caller
        whose write then fails must ``discard`` it, or an external object would outlive its secret."""
        if record.max_reads is not None:
            # Limited secrets stay in the database store: their last read deletes the payload in the same
            # transaction.
            store = DATABASE
        return with_payload(record, store, self.store(store).put(payload_info(record), payload))

    def hold(self, conn: Connection, record: SecretRecord) -> None:
        """First in the write transaction that records ``record``'s payload (see SecretStore.hold)."""
        self.store(record.store).hold(conn, payload_info(record), stored_payload(record))

    def read(self, record: SecretRecord, version: int | None = None) -> bytes:
        """The payload ``record``'s row points at, from its store (``version``: a previous version's row)."""
        try:
            return self.store(record.store).get(payload_info(record, version), stored_payload(record))
        except PayloadMissing:
            raise NotFound(NO_PAYLOAD if record.store_ref is None else GONE_FROM_STORE) from None

    def read_previous(self, record: SecretRecord, version: int, kek_id: str | None, ciphertext: bytes) -> bytes:
        """A previous version of a rotated secret, from its archived row (versions stay in the database store)."""
        archived = replace(record, store=None, store_ref=None, kek_id=kek_id, ciphertext=ciphertext)
        return self.read(archived, version)

    def discard(self, record: SecretRecord) -> None:
        """Destroy a secret's payload in its store (the database store's goes with the row); gone is fine."""
        discard(self.store(record.store), record)


def discard(store: SecretStore, record: SecretRecord) -> None:
    """Destroy ``record``'s payload in ``store``, the one its row names; one already gone is fine."""
    try:
        store.delete(payload_info(record), stored_payload(record))
    except PayloadMissing:
        pass
