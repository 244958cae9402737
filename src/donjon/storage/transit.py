"""The rows that hold transit key rings: secrets of the project named ``transit/<name>``, marked by algorithm.

A ring is an ordinary secret row (so KEK rotation, purges and Barbican lists see it); what tells it from a
Barbican secret of the same name is ``algorithm = 'vault-transit'``, a value Barbican's own clients never
send for a stored secret. Updates swap the ciphertext only if it is still the one the caller read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from donjon.storage import access
from donjon.storage.driver_select import DriverSelect
from donjon.storage.records import SecretRecord
from donjon.storage.tables import secrets

MARKER_ALGORITHM = "vault-transit"
NAME_PREFIX = "transit/"


def _rings(project_id: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        secrets.c.project_id == project_id,
        secrets.c.algorithm == MARKER_ALGORITHM,
        secrets.c.ciphertext.is_not(None),
        or_(secrets.c.expiration.is_(None), secrets.c.expiration > now),
    ]


# Built once: the statement of every transit call, cheaper to run than to construct (as storage/access.py).
_FIND_RING = (
    select(secrets.c.id)
    .where(
        secrets.c.project_id == bindparam("project_id"),
        secrets.c.algorithm == MARKER_ALGORITHM,
        secrets.c.ciphertext.is_not(None),
        or_(secrets.c.expiration.is_(None), secrets.c.expiration > bindparam("now", type_=secrets.c.expiration.type)),
        secrets.c.name == bindparam("name"),
    )
    .order_by(secrets.c.created_at, secrets.c.id)
    .limit(1)
)
# The ring found by name, payload included, with the caller's ACL facts (user_id): one query per transit call.
_RING_WITH_ACCESS = DriverSelect(access.secret_statement(True, _FIND_RING.subquery("wanted")))


def find_ring(
    conn: Connection, project_id: str, name: str, user_id: str | None, now: datetime
) -> tuple[SecretRecord, access.AccessFacts] | None:
    """The ring named ``name`` in the project, payload included (the oldest if a race ever made two), and the
    ACL facts about ``user_id`` that the policy decides on (services.access.decide_secret)."""
    params = {"project_id": project_id, "name": NAME_PREFIX + name, "user_id": user_id, "now": now}
    return access.found_with_access(_RING_WITH_ACCESS.first(conn, params))


def ring_names(conn: Connection, project_id: str, now: datetime) -> list[str]:
    rows = conn.execute(select(secrets.c.name).where(*_rings(project_id, now)).distinct().order_by(secrets.c.name))
    return [r.name[len(NAME_PREFIX) :] for r in rows if r.name and r.name.startswith(NAME_PREFIX)]


def replace_ring(
    conn: Connection, secret_id: str, *, old: bytes, kek_id: str, ciphertext: bytes, now: datetime
) -> bool:
    """Store a new sealed ring; False if the row changed (or went) since ``old`` was read."""
    result = conn.execute(
        update(secrets)
        .where(secrets.c.id == secret_id, secrets.c.ciphertext == old)
        .values(kek_id=kek_id, ciphertext=ciphertext, updated_at=now)
    )
    return result.rowcount == 1
