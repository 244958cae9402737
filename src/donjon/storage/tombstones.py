"""Deleting a secret with everything that holds its bytes, and the tombstone that records when and why.

Every function runs inside the caller's transaction; its conditional writes arbitrate races between nodes
(see donjon.storage).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from donjon.storage.records import SecretRecord
from donjon.storage.tables import (
    kv_entries,
    kv_versions,
    secret_consumers,
    secret_metadata,
    secret_tombstones,
    secret_versions,
    secret_wraps,
    secrets,
)

DELETED, EXPIRED, READ_LIMIT = "deleted", "expired", "read-limit"  # a tombstone's deleted_reason
# The rows that hang off one secret by ``secret_id`` and hold its bytes or its data, children before parents
# (kv_versions before kv_entries); a deletion and a purge remove them before the secret itself.
SECRET_DATA = (secret_wraps, secret_versions, secret_metadata, kv_versions, kv_entries)


def remove_secret(conn: Connection, record: SecretRecord, *, reason: str, now: datetime) -> bool:
    """Delete a secret with everything that holds its bytes, and leave a tombstone. False if already gone."""
    # The secret's row is locked first, as a wrap does before adding a token: taking the children's locks
    # first, then the row's, deadlocked against a concurrent wrap on MariaDB.
    conn.execute(select(secrets.c.id).where(secrets.c.id == record.id).with_for_update())
    # Children first: not every backend enforces ON DELETE CASCADE the same way (SQLite needs a pragma).
    for table in (*SECRET_DATA, secret_consumers):
        conn.execute(delete(table).where(table.c.secret_id == record.id))
    gone = conn.execute(delete(secrets).where(secrets.c.id == record.id, secrets.c.project_id == record.project_id))
    if gone.rowcount != 1:
        return False
    add_tombstone(conn, record, reason=reason, now=now)
    return True


def add_tombstone(conn: Connection, record: SecretRecord, *, reason: str, now: datetime) -> None:
    # A tombstone keeps the secret's own columns that it shares (same names), and when and why it went.
    kept = {column.name: getattr(record, column.name) for column in secret_tombstones.c if hasattr(record, column.name)}
    conn.execute(insert(secret_tombstones).values(**kept, deleted_at=now, deleted_reason=reason))
