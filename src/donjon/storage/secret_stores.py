"""Which secret store a project prefers for its new secrets (``/v1/secret-stores/{id}/preferred``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from donjon.storage.tables import project_secret_stores


def preferred(conn: Connection, project_id: str) -> str | None:
    value = conn.execute(
        select(project_secret_stores.c.store_name).where(project_secret_stores.c.project_id == project_id)
    ).scalar_one_or_none()
    return str(value) if value is not None else None


def set_preferred(conn: Connection, project_id: str, store_name: str, now: datetime) -> None:
    updated = conn.execute(
        update(project_secret_stores)
        .where(project_secret_stores.c.project_id == project_id)
        .values(store_name=store_name, created_at=now)
    ).rowcount
    if not updated:
        conn.execute(insert(project_secret_stores).values(project_id=project_id, store_name=store_name, created_at=now))


def clear_preferred(conn: Connection, project_id: str) -> bool:
    result = conn.execute(delete(project_secret_stores).where(project_secret_stores.c.project_id == project_id))
    return result.rowcount == 1
