"""Rows of KV v2 entries (the Vault API): ``kv_entries``, ``kv_versions``, and the secret rows they extend.

A KV version's ciphertext lives where every donjon version's does: the current one on the secret's row,
the previous ones in ``secret_versions`` (kept, not on a grace period: their ``expires_at`` is ``KEPT``,
until max_versions trims them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, update

from donjon.storage import access
from donjon.storage.driver_select import DriverInsert, DriverSelect
from donjon.storage.records import SecretRecord
from donjon.storage.tables import kv_entries, kv_versions, secret_versions, secrets
from donjon.storage.versions import Payload, keep_previous, set_current

# A KV version stays until trimmed or destroyed: the reaper's version pass never reaches this date.
KEPT = datetime(9999, 1, 1)


@dataclass(frozen=True)
class KvEntryRow:
    secret_id: str
    project_id: str
    path: str
    max_versions: int
    cas_required: bool
    delete_version_after: int
    custom_metadata: dict[str, str] | None
    metadata_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class KvVersionRow:
    version: int
    created_at: datetime
    deletion_time: datetime | None
    destroyed: bool


def _entry(row: Any) -> KvEntryRow:
    custom = json.loads(row.custom_metadata) if row.custom_metadata is not None else None
    return KvEntryRow(
        row.secret_id,
        row.project_id,
        row.path,
        row.max_versions,
        bool(row.cas_required),
        row.delete_version_after,
        custom,
        row.metadata_version,
        row.created_at,
        row.updated_at,
    )


# Built once: the statements of every KV read and write, cheaper to run than to construct (storage/access.py);
# the reads run on the driver's cursor (storage/driver_select.py).
_FIND_ENTRY = DriverSelect(
    select(kv_entries).where(kv_entries.c.project_id == bindparam("project_id"), kv_entries.c.path == bindparam("path"))
)
# A new path's first write runs both, in the group commit's batch: on the driver's cursor (driver_select).
_INSERT_ENTRY = DriverInsert(kv_entries, [column.key for column in kv_entries.c])
_INSERT_VERSION = DriverInsert(kv_versions, [column.key for column in kv_versions.c])
_VERSIONS = DriverSelect(
    select(kv_versions).where(kv_versions.c.secret_id == bindparam("secret_id")).order_by(kv_versions.c.version)
)


def find_entry(conn: Connection, project_id: str, path: str) -> KvEntryRow | None:
    row = _FIND_ENTRY.first(conn, {"project_id": project_id, "path": path})
    return _entry(row) if row is not None else None


def _secret_at_path(with_payload: bool) -> DriverSelect:
    wanted = select(kv_entries.c.secret_id.label("id")).where(
        kv_entries.c.project_id == bindparam("project_id"), kv_entries.c.path == bindparam("path")
    )
    return DriverSelect(access.secret_statement(with_payload, wanted.subquery("wanted")))


# The secret of a path's entry with the caller's ACL facts, in one query (as a transit ring's, storage/transit.py):
# what every KV operation that needs the secret but not the entry's settings runs, a read above all.
_SECRET_AT_PATH = {with_payload: _secret_at_path(with_payload) for with_payload in (True, False)}


@dataclass(frozen=True)
class PathLookup:
    has_entry: bool  # the project has an entry at the path
    found: tuple[SecretRecord, access.AccessFacts] | None  # None: no entry, or its secret has expired


def secret_at_path(
    conn: Connection, project_id: str, path: str, user_id: str | None, now: datetime, *, with_payload: bool
) -> PathLookup:
    """The secret at ``path`` in the project and the ACL facts about ``user_id`` that the policy decides on
    (services.access.decide_secret)."""
    params = {"project_id": project_id, "path": path, "user_id": user_id, "now": now}
    row = _SECRET_AT_PATH[with_payload].first(conn, params)
    # No row: no entry at the path. A row of NULLs: an entry whose secret is not there for ``now`` (expired).
    return PathLookup(has_entry=row is not None, found=access.found_with_access(row))


def _settings(entry: KvEntryRow) -> dict[str, Any]:
    """The columns of a key's settings: written when the key is made and again on every change."""
    return {
        "max_versions": entry.max_versions,
        "cas_required": entry.cas_required,
        "delete_version_after": entry.delete_version_after,
        "custom_metadata": json.dumps(entry.custom_metadata) if entry.custom_metadata is not None else None,
        "metadata_version": entry.metadata_version,
        "updated_at": entry.updated_at,
    }


def insert_entry(conn: Connection, entry: KvEntryRow) -> None:
    _INSERT_ENTRY.execute(
        conn,
        {
            "secret_id": entry.secret_id,
            "project_id": entry.project_id,
            "path": entry.path,
            "created_at": entry.created_at,
            **_settings(entry),
        },
    )


def update_entry(conn: Connection, entry: KvEntryRow) -> None:
    conn.execute(update(kv_entries).where(kv_entries.c.secret_id == entry.secret_id).values(**_settings(entry)))


def paths_under(conn: Connection, project_id: str, prefix: str) -> list[str]:
    """Every KV path of the project starting with ``prefix`` (compared in Python: no LIKE escaping)."""
    stmt = select(kv_entries.c.path).where(kv_entries.c.project_id == project_id)
    if prefix:
        stmt = stmt.where(func.substr(kv_entries.c.path, 1, len(prefix)) == prefix)
    return [p for (p,) in conn.execute(stmt) if p.startswith(prefix)]


def versions(conn: Connection, secret_id: str) -> list[KvVersionRow]:
    rows = _VERSIONS.all(conn, {"secret_id": secret_id})
    return [KvVersionRow(r.version, r.created_at, r.deletion_time, bool(r.destroyed)) for r in rows]


def add_version(conn: Connection, secret_id: str, version: KvVersionRow) -> None:
    _INSERT_VERSION.execute(
        conn,
        {
            "secret_id": secret_id,
            "version": version.version,
            "created_at": version.created_at,
            "deletion_time": version.deletion_time,
            "destroyed": version.destroyed,
        },
    )


def set_deletion(conn: Connection, secret_id: str, numbers: list[int], when: datetime | None) -> None:
    """Soft-delete (``when``) or undelete (None) versions; destroyed ones stay as they are."""
    if not numbers:
        return
    conn.execute(
        update(kv_versions)
        .where(
            kv_versions.c.secret_id == secret_id,
            kv_versions.c.version.in_(numbers),
            kv_versions.c.destroyed.is_(False),
        )
        .values(deletion_time=when)
    )


def destroy(conn: Connection, secret_id: str, numbers: list[int], current: int) -> None:
    """Remove versions' ciphertexts for good and mark them destroyed (the row of the current one keeps no
    payload: the Barbican API then answers that the secret has none)."""
    if not numbers:
        return
    conn.execute(
        update(kv_versions)
        .where(kv_versions.c.secret_id == secret_id, kv_versions.c.version.in_(numbers))
        .values(destroyed=True, deletion_time=None)
    )
    conn.execute(
        delete(secret_versions).where(secret_versions.c.secret_id == secret_id, secret_versions.c.version.in_(numbers))
    )
    if current in numbers:
        conn.execute(
            update(secrets).where(secrets.c.id == secret_id, secrets.c.version == current).values(ciphertext=None)
        )


def trim(conn: Connection, secret_id: str, keep_from: int) -> None:
    """Drop every version older than ``keep_from`` (max_versions): its state and its ciphertext."""
    conn.execute(delete(kv_versions).where(kv_versions.c.secret_id == secret_id, kv_versions.c.version < keep_from))
    conn.execute(
        delete(secret_versions).where(secret_versions.c.secret_id == secret_id, secret_versions.c.version < keep_from)
    )


def previous_ciphertext(conn: Connection, secret_id: str, version: int) -> tuple[str | None, bytes] | None:
    """(kek id, ciphertext) of a kept previous version."""
    row = conn.execute(
        select(secret_versions.c.kek_id, secret_versions.c.ciphertext).where(
            secret_versions.c.secret_id == secret_id, secret_versions.c.version == version
        )
    ).first()
    return (row.kek_id, row.ciphertext) if row is not None else None


def advance(
    conn: Connection,
    *,
    secret_id: str,
    project_id: str,
    new_version: int,
    content_type: str,
    kek_id: str,
    ciphertext: bytes,
    now: datetime,
) -> bool:
    """Make ``new_version`` the secret's payload, keeping the current ciphertext (if any) as a previous version.

    The row is read once, here, and the update fenced on the version read (the caller holds the row's lock):
    False if the secret went, or another write came first.
    """
    row = conn.execute(
        select(
            secrets.c.version,
            secrets.c.ciphertext,
            secrets.c.kek_id,
            secrets.c.content_type,
            secrets.c.version_started_at,
            secrets.c.created_at,
        ).where(secrets.c.id == secret_id)
    ).first()
    if row is None:
        return False
    fence = (secrets.c.id == secret_id, secrets.c.version == row.version)
    new = Payload(secret_id, project_id, new_version, content_type, kek_id, ciphertext)
    if not set_current(conn, fence, new, started=now if new_version > 1 else None, now=now):
        return False
    if row.ciphertext is not None and row.version < new_version:
        previous = Payload(secret_id, project_id, row.version, row.content_type, row.kek_id, row.ciphertext)
        keep_previous(conn, previous, created_at=row.version_started_at or row.created_at, expires_at=KEPT)
    return True
