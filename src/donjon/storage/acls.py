"""Read ACLs of secrets and containers: one row per entity (project-access flag) and its user list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Table, delete, insert, select, update

from donjon.storage.tables import container_acl_users, container_acls, secret_acl_users, secret_acls


@dataclass(frozen=True)
class AclRecord:
    project_access: bool
    users: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class _AclTables:
    acls: Table
    users: Table
    key: str


SECRET = _AclTables(secret_acls, secret_acl_users, "secret_id")
CONTAINER = _AclTables(container_acls, container_acl_users, "container_id")


def get(conn: Connection, t: _AclTables, entity_id: str) -> AclRecord | None:
    row = conn.execute(select(t.acls).where(t.acls.c[t.key] == entity_id)).first()
    if row is None:
        return None
    users = conn.execute(
        select(t.users.c.user_id).where(t.users.c[t.key] == entity_id).order_by(t.users.c.user_id)
    ).scalars()
    return AclRecord(row.project_access, list(users), row.created_at, row.updated_at)


def access(conn: Connection, t: _AclTables, entity_id: str, user_id: str | None) -> tuple[bool, bool]:
    """(project_access, caller listed) for a policy target; no ACL row means project access, no users."""
    row = conn.execute(select(t.acls.c.project_access).where(t.acls.c[t.key] == entity_id)).first()
    if row is None:
        return True, False
    listed = False
    if user_id:
        listed = (
            conn.execute(
                select(t.users.c.user_id).where(t.users.c[t.key] == entity_id, t.users.c.user_id == user_id)
            ).first()
            is not None
        )
    return bool(row.project_access), listed


def put(
    conn: Connection,
    t: _AclTables,
    entity_id: str,
    *,
    project_access: bool | None,
    users: list[str] | None,
    now: datetime,
) -> None:
    """Create or update the ACL; ``None`` leaves a field as it is (defaults: project access, no users)."""
    exists = conn.execute(select(t.acls.c[t.key]).where(t.acls.c[t.key] == entity_id)).first() is not None
    if not exists:
        conn.execute(
            insert(t.acls).values(
                {
                    t.key: entity_id,
                    "project_access": True if project_access is None else project_access,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        )
    else:
        values: dict[str, object] = {"updated_at": now}
        if project_access is not None:
            values["project_access"] = project_access
        conn.execute(update(t.acls).where(t.acls.c[t.key] == entity_id).values(values))
    if users is not None:
        conn.execute(delete(t.users).where(t.users.c[t.key] == entity_id))
        unique = sorted(set(users))
        if unique:
            conn.execute(insert(t.users), [{t.key: entity_id, "user_id": u} for u in unique])


def remove(conn: Connection, t: _AclTables, entity_id: str) -> None:
    conn.execute(delete(t.users).where(t.users.c[t.key] == entity_id))
    conn.execute(delete(t.acls).where(t.acls.c[t.key] == entity_id))
