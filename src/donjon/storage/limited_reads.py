"""Limited secrets' read budget (``max_reads``, a donjon extension): one read spent per conditional UPDATE.

Every function runs inside the caller's transaction; its conditional writes arbitrate races between nodes
(see donjon.storage).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update

from donjon.storage.records import SecretRecord, secret_record
from donjon.storage.tables import secrets


def _alive(now: datetime) -> Any:
    return or_(secrets.c.expiration.is_(None), secrets.c.expiration > now)


def take_read(conn: Connection, secret_id: str, now: datetime) -> bool:
    """Spend one read of a limited secret; False if none is left (or it expired, or is gone)."""
    result = conn.execute(
        update(secrets)
        .where(secrets.c.id == secret_id, secrets.c.reads_left > 0, _alive(now))
        .values(reads_left=secrets.c.reads_left - 1)
    )
    return result.rowcount == 1


def current_secret(conn: Connection, secret_id: str) -> SecretRecord | None:
    """The secret's row, ciphertext included, read in the caller's transaction."""
    row = conn.execute(select(secrets).where(secrets.c.id == secret_id)).first()
    return secret_record(row) if row is not None else None
