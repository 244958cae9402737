"""The expiry reaper's queries: expired secrets (claimed, skipping others' locked rows), versions past their
grace period, expired wrap tokens and old tombstones.

Every function runs inside the caller's transaction; its conditional writes arbitrate races between nodes
(see donjon.storage).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, delete, or_, select

from donjon.storage.records import SecretRecord, secret_record
from donjon.storage.tables import secret_tombstones, secret_versions, secret_wraps, secrets


def claim_expired(
    conn: Connection, cutoff: datetime, limit: int, *, skip_locked: bool, skip_stores: Collection[str] = ()
) -> list[SecretRecord]:
    """Lock up to ``limit`` secrets that expired before ``cutoff`` (others' locked rows are skipped), except
    those held by the external stores ``skip_stores``."""
    cols = [c for c in secrets.c if c.name != "ciphertext"]
    conds = [secrets.c.expiration.is_not(None), secrets.c.expiration <= cutoff]
    if skip_stores:
        conds.append(or_(secrets.c.store.is_(None), secrets.c.store.not_in(list(skip_stores))))
    stmt = select(*cols).where(*conds).order_by(secrets.c.expiration, secrets.c.id).limit(limit)
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return [secret_record(row) for row in conn.execute(stmt)]


def reap_versions(conn: Connection, now: datetime, limit: int, *, skip_locked: bool) -> int:
    stmt = (
        select(secret_versions.c.secret_id, secret_versions.c.version)
        .where(secret_versions.c.expires_at <= now)
        .limit(limit)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    done = 0
    for row in conn.execute(stmt).all():
        done += conn.execute(
            delete(secret_versions).where(
                secret_versions.c.secret_id == row.secret_id, secret_versions.c.version == row.version
            )
        ).rowcount
    return done


def reap_wraps(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(secret_wraps).where(secret_wraps.c.expires_at <= now)).rowcount


def reap_tombstones(conn: Connection, before: datetime) -> int:
    return conn.execute(delete(secret_tombstones).where(secret_tombstones.c.deleted_at < before)).rowcount
