"""Project KEK rows: wrapped keys and which one is active per project."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from donjon.keystores import WrappedKey
from donjon.storage.tables import project_active_kek, project_keks


def get_active(conn: Connection, project_id: str) -> tuple[str, WrappedKey] | None:
    row = conn.execute(
        select(project_keks.c.id, project_keks.c.root_key_id, project_keks.c.wrapped_key)
        .join(project_active_kek, project_active_kek.c.kek_id == project_keks.c.id)
        .where(project_active_kek.c.project_id == project_id)
    ).first()
    if row is None:
        return None
    return row.id, WrappedKey(row.root_key_id, row.wrapped_key)


def get_wrapped(conn: Connection, project_id: str, kek_id: str) -> WrappedKey | None:
    row = conn.execute(
        select(project_keks.c.root_key_id, project_keks.c.wrapped_key).where(
            project_keks.c.id == kek_id, project_keks.c.project_id == project_id
        )
    ).first()
    return WrappedKey(row.root_key_id, row.wrapped_key) if row is not None else None


def create_active(conn: Connection, *, kek_id: str, project_id: str, wrapped: WrappedKey, now: datetime) -> None:
    """Insert a KEK and make it the project's first active one; raises IntegrityError if one already is."""
    conn.execute(
        insert(project_keks).values(
            id=kek_id,
            project_id=project_id,
            root_key_id=wrapped.root_key_id,
            wrapped_key=wrapped.blob,
            created_at=now,
        )
    )
    conn.execute(insert(project_active_kek).values(project_id=project_id, kek_id=kek_id))
