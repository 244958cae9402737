"""Project KEK rows: wrapped keys and which one is active per project."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from donjon.storage.driver_select import DriverSelect
from donjon.storage.tables import project_active_kek, project_keks
from donjon.wrapped_key import WrappedKey


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


def _insert(conn: Connection, kek_id: str, project_id: str, wrapped: WrappedKey, now: datetime) -> None:
    conn.execute(
        insert(project_keks).values(
            id=kek_id,
            project_id=project_id,
            root_key_id=wrapped.root_key_id,
            wrapped_key=wrapped.blob,
            created_at=now,
        )
    )


def create_active(conn: Connection, *, kek_id: str, project_id: str, wrapped: WrappedKey, now: datetime) -> None:
    """Insert a KEK and make it the project's first active one; raises IntegrityError if one already is."""
    _insert(conn, kek_id, project_id, wrapped, now)
    conn.execute(insert(project_active_kek).values(project_id=project_id, kek_id=kek_id))


# Built once: every sealed write checks its KEK (ProjectKeys.hold).
_KEK_EXISTS = DriverSelect(
    select(project_keks.c.id).where(
        project_keks.c.id == bindparam("kek_id"), project_keks.c.project_id == bindparam("project_id")
    )
)


def exists(conn: Connection, project_id: str, kek_id: str) -> bool:
    """Whether the project's KEK ``kek_id`` is still there (a KEK rotation deletes retired ones)."""
    return _KEK_EXISTS.first(conn, {"kek_id": kek_id, "project_id": project_id}) is not None


def ids_not_under(conn: Connection, root_key_id: str, limit: int, *, after: str = "") -> list[str]:
    """KEKs still wrapped by another root than ``root_key_id`` (what a root rotation has left), by id."""
    rows = conn.execute(
        select(project_keks.c.id)
        .where(project_keks.c.root_key_id != root_key_id, project_keks.c.id > after)
        .order_by(project_keks.c.id)
        .limit(limit)
    )
    return [r.id for r in rows]


def count_by_root(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(project_keks.c.root_key_id, func.count()).group_by(project_keks.c.root_key_id))
    return {r[0]: int(r[1]) for r in rows}


def get_row(conn: Connection, kek_id: str) -> tuple[str, WrappedKey] | None:
    row = conn.execute(
        select(project_keks.c.project_id, project_keks.c.root_key_id, project_keks.c.wrapped_key).where(
            project_keks.c.id == kek_id
        )
    ).first()
    return (row.project_id, WrappedKey(row.root_key_id, row.wrapped_key)) if row is not None else None


def replace_wrap(conn: Connection, kek_id: str, old: WrappedKey, new: WrappedKey) -> bool:
    """Swap a KEK's wrapped form, only if it is still ``old`` (another rotator may have been first)."""
    result = conn.execute(
        update(project_keks)
        .where(
            project_keks.c.id == kek_id,
            project_keks.c.root_key_id == old.root_key_id,
            project_keks.c.wrapped_key == old.blob,
        )
        .values(root_key_id=new.root_key_id, wrapped_key=new.blob)
    )
    return result.rowcount == 1


def add_and_activate(
    conn: Connection, *, kek_id: str, project_id: str, wrapped: WrappedKey, now: datetime
) -> str | None:
    """Insert a new KEK and make it the project's active one; returns the KEK it replaced (None: first KEK)."""
    previous = conn.execute(
        select(project_active_kek.c.kek_id).where(project_active_kek.c.project_id == project_id)
    ).scalar_one_or_none()
    _insert(conn, kek_id, project_id, wrapped, now)
    if previous is None:
        conn.execute(insert(project_active_kek).values(project_id=project_id, kek_id=kek_id))
    else:
        conn.execute(
            update(project_active_kek).where(project_active_kek.c.project_id == project_id).values(kek_id=kek_id)
        )
    return previous


def active_id(conn: Connection, project_id: str) -> str | None:
    value = conn.execute(
        select(project_active_kek.c.kek_id).where(project_active_kek.c.project_id == project_id)
    ).scalar_one_or_none()
    return str(value) if value is not None else None


def inactive_ids(conn: Connection, project_id: str) -> list[str]:
    """The project's KEKs other than the active one."""
    active = select(project_active_kek.c.kek_id).where(project_active_kek.c.project_id == project_id)
    rows = conn.execute(
        select(project_keks.c.id).where(project_keks.c.project_id == project_id, project_keks.c.id.not_in(active))
    )
    return [r.id for r in rows]


def delete_kek(conn: Connection, kek_id: str) -> None:
    conn.execute(delete(project_keks).where(project_keks.c.id == kek_id))


def projects(conn: Connection) -> list[str]:
    """Every project that has a KEK."""
    return [r.project_id for r in conn.execute(select(project_active_kek.c.project_id).order_by("project_id"))]
