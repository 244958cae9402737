"""Wrap tokens (a donjon extension): single-use, short-lived hand-offs of a secret's payload; only a keyed
hash of each token is stored.

Every function runs inside the caller's transaction; its conditional writes arbitrate races between nodes
(see donjon.storage).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, or_, select

from donjon.storage.tables import secret_wraps, secrets


def lock_live_secret(conn: Connection, secret_id: str, now: datetime) -> bool:
    """Lock a live secret's row until the transaction ends (PostgreSQL, MariaDB; SQLite's write lock
    serialises writers already); False if it is gone or expired."""
    row = conn.execute(
        select(secrets.c.id)
        .where(secrets.c.id == secret_id, or_(secrets.c.expiration.is_(None), secrets.c.expiration > now))
        .with_for_update()
    ).first()
    return row is not None


def outstanding_wraps(conn: Connection, secret_id: str, now: datetime) -> int:
    """Unexpired wrap tokens of a secret, after deleting its expired ones (the reaper's work, done early)."""
    conn.execute(delete(secret_wraps).where(secret_wraps.c.secret_id == secret_id, secret_wraps.c.expires_at <= now))
    return conn.execute(
        select(func.count()).select_from(secret_wraps).where(secret_wraps.c.secret_id == secret_id)
    ).scalar_one()


def insert_wrap(
    conn: Connection,
    *,
    wrap_id: str,
    digest: str,
    secret_id: str,
    project_id: str,
    creator: str,
    now: datetime,
    expires: datetime,
) -> None:
    conn.execute(
        insert(secret_wraps).values(
            id=wrap_id,
            digest=digest,
            secret_id=secret_id,
            project_id=project_id,
            creator=creator,
            created_at=now,
            expires_at=expires,
        )
    )


@dataclass(frozen=True)
class Wrap:
    digest: str
    secret_id: str
    expires_at: datetime
    creator: str  # JSON, as stored by the wrap service


def find_wrap(conn: Connection, wrap_id: str) -> Wrap | None:
    c = secret_wraps.c
    row = conn.execute(select(c.digest, c.secret_id, c.expires_at, c.creator).where(c.id == wrap_id)).first()
    return Wrap(row.digest, row.secret_id, row.expires_at, row.creator) if row is not None else None


def spend_wrap(conn: Connection, wrap_id: str, now: datetime) -> bool:
    """Use a wrap token up: exactly one caller gets True."""
    result = conn.execute(delete(secret_wraps).where(secret_wraps.c.id == wrap_id, secret_wraps.c.expires_at > now))
    return result.rowcount == 1


@dataclass(frozen=True)
class WrapView:
    """What a wrap token stands for, shown without spending it: its digest (to check), the wrapped secret's
    name, and when the token was made and ends."""

    digest: str
    secret_name: str | None
    created_at: datetime
    expires_at: datetime


def view_wrap(conn: Connection, wrap_id: str) -> WrapView | None:
    c = secret_wraps.c
    row = conn.execute(
        select(c.digest, secrets.c.name, c.created_at, c.expires_at)
        .join(secrets, secrets.c.id == c.secret_id)
        .where(c.id == wrap_id)
    ).first()
    return WrapView(row.digest, row.name, row.created_at, row.expires_at) if row is not None else None
