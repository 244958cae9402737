"""Lifecycle rows: read budgets, payload versions, tombstones, wrap tokens, reaping and project purges.

Every function runs inside the caller's transaction. The conditional UPDATEs here are the arbiters of
races between nodes: a row changes only if it is still in the state the caller saw, and ``rowcount``
says who won. On PostgreSQL and MariaDB (READ COMMITTED) a concurrent UPDATE of the same row waits for
the first to commit and then re-evaluates its WHERE clause on the committed row; on SQLite writes are
serialised by the database's write lock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from donjon.storage.records import SecretRecord, secret_record
from donjon.storage.tables import (
    container_acls,
    container_consumers,
    container_secrets,
    containers,
    orders,
    project_active_kek,
    project_keks,
    project_locks,
    project_quotas,
    project_secret_stores,
    secret_acls,
    secret_consumers,
    secret_metadata,
    secret_tombstones,
    secret_versions,
    secret_wraps,
    secrets,
)

DELETED, EXPIRED, READ_LIMIT = "deleted", "expired", "read-limit"


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


def _alive(now: datetime) -> Any:
    return or_(secrets.c.expiration.is_(None), secrets.c.expiration > now)


# --- deleting a secret: children, the row, and its tombstone -------------------------------------------


def remove_secret(conn: Connection, record: SecretRecord, *, reason: str, now: datetime) -> bool:
    """Delete a secret with everything that holds its bytes, and leave a tombstone. False if already gone."""
    # The secret's row is locked first, as a wrap does before adding a token: taking the children's locks
    # first, then the row's, deadlocked against a concurrent wrap on MariaDB.
    conn.execute(select(secrets.c.id).where(secrets.c.id == record.id).with_for_update())
    # Children first: not every backend enforces ON DELETE CASCADE the same way (SQLite needs a pragma).
    conn.execute(delete(secret_versions).where(secret_versions.c.secret_id == record.id))
    conn.execute(delete(secret_wraps).where(secret_wraps.c.secret_id == record.id))
    conn.execute(delete(secret_metadata).where(secret_metadata.c.secret_id == record.id))
    conn.execute(delete(secret_consumers).where(secret_consumers.c.secret_id == record.id))
    gone = conn.execute(delete(secrets).where(secrets.c.id == record.id, secrets.c.project_id == record.project_id))
    if gone.rowcount != 1:
        return False
    add_tombstone(conn, record, reason=reason, now=now)
    return True


def add_tombstone(conn: Connection, record: SecretRecord, *, reason: str, now: datetime) -> None:
    conn.execute(
        insert(secret_tombstones).values(
            id=record.id,
            project_id=record.project_id,
            name=record.name,
            secret_type=record.secret_type,
            creator_id=record.creator_id,
            created_at=record.created_at,
            expiration=record.expiration,
            deleted_at=now,
            deleted_reason=reason,
        )
    )


# --- limited secrets -----------------------------------------------------------------------------------


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


# --- versions ------------------------------------------------------------------------------------------


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
    result = conn.execute(
        update(secrets)
        .where(
            secrets.c.id == current.secret_id,
            secrets.c.version == current.version,
            secrets.c.ciphertext.is_not(None),
        )
        .values(
            version=current.version + 1,
            version_started_at=now,
            content_type=content_type,
            kek_id=kek_id,
            ciphertext=ciphertext,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return False
    conn.execute(
        insert(secret_versions).values(
            secret_id=current.secret_id,
            version=current.version,
            project_id=current.project_id,
            content_type=current.content_type,
            kek_id=current.kek_id,
            ciphertext=current.ciphertext,
            created_at=previous_created,
            expires_at=grace_until,
        )
    )
    return True


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


# --- wrap tokens ---------------------------------------------------------------------------------------


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
    creator: str  # JSON, as stored by the lifecycle service


def find_wrap(conn: Connection, wrap_id: str) -> Wrap | None:
    c = secret_wraps.c
    row = conn.execute(select(c.digest, c.secret_id, c.expires_at, c.creator).where(c.id == wrap_id)).first()
    return Wrap(row.digest, row.secret_id, row.expires_at, row.creator) if row is not None else None


def spend_wrap(conn: Connection, wrap_id: str, now: datetime) -> bool:
    """Use a wrap token up: exactly one caller gets True."""
    result = conn.execute(delete(secret_wraps).where(secret_wraps.c.id == wrap_id, secret_wraps.c.expires_at > now))
    return result.rowcount == 1


# --- the reaper ----------------------------------------------------------------------------------------


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


# --- purging a project ---------------------------------------------------------------------------------


def externally_stored(conn: Connection, project_id: str) -> list[SecretRecord]:
    """The project's secrets whose payload an external store holds (their objects go with a purge)."""
    cols = [c for c in secrets.c if c.name != "ciphertext"]
    rows = conn.execute(select(*cols).where(secrets.c.project_id == project_id, secrets.c.store_ref.is_not(None)))
    return [secret_record(r) for r in rows]


def shred_project_keks(conn: Connection, project_id: str) -> int:
    """Delete the project's KEK rows (and the references to them): its ciphertexts can no longer be opened."""
    kek_ids = select(project_keks.c.id).where(project_keks.c.project_id == project_id)
    for table in (secrets, secret_versions, orders):
        conn.execute(update(table).where(table.c.kek_id.in_(kek_ids)).values(kek_id=None))
    conn.execute(delete(project_active_kek).where(project_active_kek.c.project_id == project_id))
    return conn.execute(delete(project_keks).where(project_keks.c.project_id == project_id)).rowcount


def purge_project_rows(conn: Connection, project_id: str) -> dict[str, int]:
    """Delete every row of the project, children before parents; counts per table."""
    counts: dict[str, int] = {}
    project_secrets = select(secrets.c.id).where(secrets.c.project_id == project_id)
    project_containers = select(containers.c.id).where(containers.c.project_id == project_id)

    def run(name: str, stmt: Any) -> None:
        counts[name] = counts.get(name, 0) + conn.execute(stmt).rowcount

    run("secret_wraps", delete(secret_wraps).where(secret_wraps.c.secret_id.in_(project_secrets)))
    run("secret_versions", delete(secret_versions).where(secret_versions.c.secret_id.in_(project_secrets)))
    run("secret_metadata", delete(secret_metadata).where(secret_metadata.c.secret_id.in_(project_secrets)))
    # Consumers of the project's resources, and those the project registered on others' resources.
    run(
        "secret_consumers",
        delete(secret_consumers).where(
            or_(secret_consumers.c.secret_id.in_(project_secrets), secret_consumers.c.project_id == project_id)
        ),
    )
    # ACL users go with their ACL row (ON DELETE CASCADE; SQLite runs with foreign_keys=ON).
    run("secret_acls", delete(secret_acls).where(secret_acls.c.secret_id.in_(project_secrets)))
    run(
        "container_secrets",
        delete(container_secrets).where(
            or_(
                container_secrets.c.secret_id.in_(project_secrets),
                container_secrets.c.container_id.in_(project_containers),
            )
        ),
    )
    run(
        "container_consumers",
        delete(container_consumers).where(
            or_(
                container_consumers.c.container_id.in_(project_containers),
                container_consumers.c.project_id == project_id,
            )
        ),
    )
    run("container_acls", delete(container_acls).where(container_acls.c.container_id.in_(project_containers)))
    run("secrets", delete(secrets).where(secrets.c.project_id == project_id))
    run("containers", delete(containers).where(containers.c.project_id == project_id))
    run("orders", delete(orders).where(orders.c.project_id == project_id))
    run("secret_tombstones", delete(secret_tombstones).where(secret_tombstones.c.project_id == project_id))
    run("project_quotas", delete(project_quotas).where(project_quotas.c.project_id == project_id))
    run("project_locks", delete(project_locks).where(project_locks.c.project_id == project_id))
    run(
        "project_secret_stores",
        delete(project_secret_stores).where(project_secret_stores.c.project_id == project_id),
    )
    return counts


def project_counts(conn: Connection, project_id: str) -> dict[str, int]:
    out = {}
    for table in (secrets, containers, orders, project_keks):
        out[table.name] = conn.execute(
            select(func.count()).select_from(table).where(table.c.project_id == project_id)
        ).scalar_one()
    return out
