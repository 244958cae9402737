"""Project quotas, and the per-project lock that makes quota checks race-free."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects import mysql, postgresql

from donjon.storage.driver_select import DriverSelect
from donjon.storage.paging import page
from donjon.storage.tables import project_locks, project_quotas

RESOURCES = ("secrets", "orders", "containers", "consumers", "cas")


@dataclass(frozen=True)
class ProjectQuotas:
    project_id: str
    values: dict[str, int | None]  # None: the configured default applies


# Built once: the quota check of every create reads it.
_QUOTAS_OF = DriverSelect(select(project_quotas).where(project_quotas.c.project_id == bindparam("project_id")))


def get(conn: Connection, project_id: str) -> ProjectQuotas | None:
    row = _QUOTAS_OF.first(conn, {"project_id": project_id})
    if row is None:
        return None
    return ProjectQuotas(project_id, {r: getattr(row, r) for r in RESOURCES})


def list_all(conn: Connection, offset: int, limit: int) -> tuple[list[ProjectQuotas], int]:
    order = (project_quotas.c.created_at, project_quotas.c.project_id)
    rows, total = page(conn, project_quotas, [], order, offset, limit)
    return [ProjectQuotas(r.project_id, {k: getattr(r, k) for k in RESOURCES}) for r in rows], total


def put(conn: Connection, project_id: str, values: dict[str, int], now: datetime) -> None:
    """Create with the given values (others unset), or update only the given values."""
    if (
        conn.execute(
            update(project_quotas).where(project_quotas.c.project_id == project_id).values(**values, updated_at=now)
        ).rowcount
        == 0
    ):
        conn.execute(insert(project_quotas).values(project_id=project_id, **values, created_at=now, updated_at=now))


def remove(conn: Connection, project_id: str) -> bool:
    return conn.execute(delete(project_quotas).where(project_quotas.c.project_id == project_id)).rowcount == 1


def lock_project(conn: Connection, project_id: str) -> None:
    """Serialise the quota-checked creates of one project until the transaction ends.

    SQLite needs nothing (one writer at a time). PostgreSQL and MariaDB take the lock with one upsert of
    the project's lock row, which locks it exclusively whether it is new or not. Inserting a missing
    row and then selecting it FOR UPDATE deadlocks on InnoDB: concurrent duplicate inserts each hold a
    shared lock on the row once it appears, and then all of them ask to upgrade it.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return
    if dialect == "postgresql":
        pg = postgresql.insert(project_locks).values(project_id=project_id)
        conn.execute(
            pg.on_conflict_do_update(index_elements=[project_locks.c.project_id], set_={"project_id": project_id})
        )
    else:
        my = mysql.insert(project_locks).values(project_id=project_id)
        conn.execute(my.on_duplicate_key_update(project_id=my.inserted.project_id))
