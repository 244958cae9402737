"""Payload versions of a rotated secret (a donjon extension): the current one in the secret's row, the
previous ones in ``secret_versions`` until their grace period ends.

Every function runs inside the caller's transaction; its conditional writes arbitrate races between nodes
(see donjon.storage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from donjon.storage.limited_reads import current_secret
from donjon.storage.records import SecretRecord
from donjon.storage.tables import secret_versions, secrets


@dataclass(frozen=True)
class Payload:
    """A sealed payload and what is needed to open it."""

    secret_id: str
    project_id: str
    version: int
    content_type: str
    kek_id: str | None
    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: datetime
    expires_at: datetime | None  # None: the current version


def current_payload(conn: Connection, secret_id: str) -> tuple[SecretRecord, Payload | None] | None:
    """The secret's row (read in the caller's transaction) and its current payload, if any."""
    record = current_secret(conn, secret_id)
    if record is None:
        return None
    if record.ciphertext is None or record.content_type is None:
        return record, None
    payload = Payload(
        record.id, record.project_id, record.version, record.content_type, record.kek_id, record.ciphertext
    )
    return record, payload


def rotate(
    conn: Connection,
    current: Payload,
    *,
    content_type: str,
    kek_id: str,
    ciphertext: bytes,
    previous_created: datetime,
    now: datetime,
    grace_until: datetime,
) -> bool:
    """Make a new version current and keep ``current`` readable until ``grace_until``.

    Fenced on the version the caller read: False if another rotation (or a delete) came first.
    """
    fence = (secrets.c.id == current.secret_id, secrets.c.version == current.version, secrets.c.ciphertext.is_not(None))
    new = Payload(current.secret_id, current.project_id, current.version + 1, content_type, kek_id, ciphertext)
    if not set_current(conn, fence, new, started=now, now=now):
        return False
    keep_previous(conn, current, created_at=previous_created, expires_at=grace_until)
    return True


def set_current(
    conn: Connection, fence: Sequence[ColumnElement[bool]], new: Payload, *, started: datetime | None, now: datetime
) -> bool:
    """Make ``new`` the payload in the secret's row (its version started at ``started``), if the row still
    matches ``fence``: False if another write came first."""
    result = conn.execute(
        update(secrets)
        .where(*fence)
        .values(
            version=new.version,
            version_started_at=started,
            content_type=new.content_type,
            kek_id=new.kek_id,
            ciphertext=new.ciphertext,
            updated_at=now,
        )
    )
    return result.rowcount == 1


_INSERT_VERSION = insert(secret_versions)  # built once, the row as parameters (storage/secrets.py)


def keep_previous(conn: Connection, previous: Payload, *, created_at: datetime, expires_at: datetime) -> None:
    """Keep ``previous`` readable as a version of its secret until ``expires_at``."""
    # Payload's fields are the version row's own columns.
    conn.execute(_INSERT_VERSION, {**asdict(previous), "created_at": created_at, "expires_at": expires_at})


def previous_payload(conn: Connection, secret_id: str, version: int, now: datetime) -> Payload | None:
    row = conn.execute(
        select(secret_versions).where(
            secret_versions.c.secret_id == secret_id,
            secret_versions.c.version == version,
            secret_versions.c.expires_at > now,
        )
    ).first()
    if row is None:
        return None
    return Payload(row.secret_id, row.project_id, row.version, row.content_type, row.kek_id, row.ciphertext)


def previous_versions(conn: Connection, secret_id: str, now: datetime) -> list[VersionInfo]:
    rows = conn.execute(
        select(secret_versions.c.version, secret_versions.c.created_at, secret_versions.c.expires_at)
        .where(secret_versions.c.secret_id == secret_id, secret_versions.c.expires_at > now)
        .order_by(secret_versions.c.version)
    )
    return [VersionInfo(r.version, r.created_at, r.expires_at) for r in rows]


def version_started(conn: Connection, secret_id: str, version: int) -> datetime | None:
    """When ``version`` became current: its rotation, as recorded on the secret's row while it is current
    and on its archived row after (None for version 1, which started with the secret)."""
    if version <= 1:
        return None
    started = conn.execute(
        select(secrets.c.version_started_at).where(secrets.c.id == secret_id, secrets.c.version == version)
    ).first()
    if started is not None:
        return started[0]  # type: ignore[no-any-return]
    return conn.execute(
        select(secret_versions.c.created_at).where(
            secret_versions.c.secret_id == secret_id, secret_versions.c.version == version
        )
    ).scalar_one_or_none()
