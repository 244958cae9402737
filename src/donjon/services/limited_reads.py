"""Limited secrets (``max_reads``, a donjon extension): each payload read spends one read in the same
transaction that reads the ciphertext; the read that spends the last one also deletes the secret. Concurrent
readers race on one conditional UPDATE, so a 1-read secret is served exactly once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from donjon.errors import NotFound
from donjon.services.commands import PayloadFormat
from donjon.services.payload_store import NO_PAYLOAD, PayloadStore
from donjon.storage import limited_reads as limited_repo
from donjon.storage import tombstones
from donjon.storage.database import Database


def serve_current(
    conn: Connection, payload_store: PayloadStore, secret_id: str, fmt: PayloadFormat, now: datetime
) -> tuple[bytes, str]:
    """Inside a write transaction: the current payload; a limited secret spends a read (and goes at zero)."""
    record = limited_repo.current_secret(conn, secret_id)
    if record is None or (record.expiration is not None and record.expiration <= now):
        raise NotFound("Secret not found.")
    if record.content_type is None:
        raise NotFound(NO_PAYLOAD)
    if record.max_reads is None:
        chosen = fmt.choose(record.content_type)
        return fmt.render(payload_store.read(record), chosen), chosen
    # Spend first: on PostgreSQL/MariaDB the UPDATE locks the row, so the payload read next is the one this
    # read paid for, and a concurrent reader waits on the lock, then finds no read left (or no row).
    if not limited_repo.take_read(conn, secret_id, now):
        raise NotFound("Secret not found.")
    record = limited_repo.current_secret(conn, secret_id)
    if record is None or record.content_type is None:
        raise NotFound("Secret not found.")
    # Any failure below (406, a KEK that does not open) rolls the spent read back with the transaction.
    chosen = fmt.choose(record.content_type)
    body = fmt.render(payload_store.read(record), chosen), chosen
    if record.reads_left is not None and record.reads_left <= 0:
        tombstones.remove_secret(conn, record, reason=tombstones.READ_LIMIT, now=now)
    return body


def read_limited(
    db: Database, payload_store: PayloadStore, secret_id: str, fmt: PayloadFormat, now: datetime
) -> tuple[bytes, str]:
    """Serve a limited secret's payload once, spending one read atomically."""
    with db.write() as conn:
        return serve_current(conn, payload_store, secret_id, fmt, now)
