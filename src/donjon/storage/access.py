"""Loading a secret or container with the ACL facts about one caller, in a single query.

The row is found by id in any project; whether the caller may see it is the policy's decision, made on
the owner, creator and ACL returned here (never on anything the request supplies).

Each statement starts from the wanted id and outer-joins the rest, so it answers one row whether the
resource exists or not (all NULL then), and the row is turned into the same values either way: another
project's id costs what an unknown id costs (services.access, no existence oracle in timing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Subquery, and_, bindparam, or_, select

from donjon.storage.containers import ContainerRecord
from donjon.storage.driver_select import DriverSelect
from donjon.storage.records import SecretRecord, secret_record
from donjon.storage.tables import (
    container_acl_users,
    container_acls,
    containers,
    secret_acl_users,
    secret_acls,
    secrets,
)


@dataclass(frozen=True)
class AccessFacts:
    project_access: bool  # no ACL row: True
    listed: bool  # the caller is in the read ACL's users


def secret_statement(with_payload: bool, wanted: Subquery | None = None) -> Select[Any]:
    """The secret whose id ``wanted`` (a one-column ``id`` subquery; default: the ``secret_id`` parameter)
    gives, with the caller's ACL facts (``user_id``, ``now`` parameters). Build it once, at import."""
    cols = [c for c in secrets.c if with_payload or c.name != "ciphertext"]
    users = secret_acl_users.alias("u")
    if wanted is None:
        wanted = select(bindparam("secret_id", type_=secrets.c.id.type).label("id")).subquery("wanted")
    alive = or_(secrets.c.expiration.is_(None), secrets.c.expiration > bindparam("now"))
    return select(*cols, secret_acls.c.project_access, users.c.user_id.label("acl_user")).select_from(
        wanted.outerjoin(secrets, and_(secrets.c.id == wanted.c.id, alive))
        .outerjoin(secret_acls, secret_acls.c.secret_id == secrets.c.id)
        .outerjoin(users, and_(users.c.secret_id == secrets.c.id, users.c.user_id == bindparam("user_id")))
    )


def _container_statement() -> Select[Any]:
    users = container_acl_users.alias("u")
    wanted = select(bindparam("container_id", type_=containers.c.id.type).label("id")).subquery("wanted")
    return select(*containers.c, container_acls.c.project_access, users.c.user_id.label("acl_user")).select_from(
        wanted.outerjoin(containers, containers.c.id == wanted.c.id)
        .outerjoin(container_acls, container_acls.c.container_id == containers.c.id)
        .outerjoin(users, and_(users.c.container_id == containers.c.id, users.c.user_id == bindparam("user_id")))
    )


# Built once: constructing this join per request cost more than running it (SQLite, profiled); run on the
# driver's cursor (storage/driver_select.py): every secret read runs one of the two.
_SECRET_WITH_PAYLOAD = DriverSelect(secret_statement(True))
_SECRET_METADATA = DriverSelect(secret_statement(False))
_CONTAINER = _container_statement()


def secret_with_access(
    conn: Connection, secret_id: str, user_id: str | None, now: datetime, *, with_payload: bool
) -> tuple[SecretRecord, AccessFacts] | None:
    stmt = _SECRET_WITH_PAYLOAD if with_payload else _SECRET_METADATA
    # A NULL user matches no ACL row, so an anonymous caller is never "listed".
    return found_with_access(stmt.first(conn, {"secret_id": secret_id, "user_id": user_id, "now": now}))


def found_with_access(row: Any) -> tuple[SecretRecord, AccessFacts] | None:
    """A ``secret_statement`` row as the secret and the facts, or None if no secret was found. The all-NULL row
    of an unknown id is converted too: the same work either way (no existence oracle in timing)."""
    if row is None:  # a ``wanted`` subquery that found nothing (the default one always gives its id)
        return None
    found = secret_record(row), _facts(row._mapping)
    return found if row.id is not None else None


def container_with_access(
    conn: Connection, container_id: str, user_id: str | None
) -> tuple[ContainerRecord, AccessFacts] | None:
    row = conn.execute(_CONTAINER, {"container_id": container_id, "user_id": user_id}).one()
    m = row._mapping
    record = ContainerRecord(
        m["id"], m["project_id"], m["name"], m["type"], m["creator_id"], m["created_at"], m["updated_at"]
    )
    found = record, _facts(m)
    return found if m["id"] is not None else None


def _facts(m: Any) -> AccessFacts:
    project_access = m["project_access"]
    return AccessFacts(
        project_access=True if project_access is None else bool(project_access), listed=m["acl_user"] is not None
    )
