"""Purging a project: its KEKs first (crypto-shredding), then every row it owns.

Every function runs inside the caller's transaction; its conditional writes arbitrate races between nodes
(see donjon.storage).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

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
    secret_tombstones,
    secret_versions,
    secrets,
)
from donjon.storage.tombstones import SECRET_DATA


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

    for table in SECRET_DATA:
        run(table.name, delete(table).where(table.c.secret_id.in_(project_secrets)))
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
