"""Purging a project: its KEKs are destroyed first, in their own transaction, then its external objects and
its rows (``donjon manage purge-project``, and the Keystone listener when a project is deleted).
"""

from __future__ import annotations

from donjon.services.payload_store import discard
from donjon.services.stores import StoreRegistry
from donjon.storage import purge as purge_repo
from donjon.storage.database import Database
from donjon.stores import DATABASE


def shred_project_keys(db: Database, project_id: str) -> int:
    """Step 1 of a purge, committed on its own: the project's KEKs are destroyed, so every ciphertext of the
    project, in this database and in any backup taken from now on, can no longer be opened."""
    with db.write() as conn:
        return purge_repo.shred_project_keks(conn, project_id)


def purge_project(db: Database, project_id: str, stores: StoreRegistry | None = None) -> dict[str, int]:
    """Destroy the project's KEKs first (own transaction), its objects in external stores, then every row."""
    counts = {"project_keks": shred_project_keys(db, project_id)}
    if stores is not None:
        with db.read() as conn:
            external = purge_repo.externally_stored(conn, project_id)
        for record in external:
            discard(stores.store(record.store or DATABASE), record)
        counts["external_objects"] = len(external)
    with db.write() as conn:
        counts.update(purge_repo.purge_project_rows(conn, project_id))
        # A KEK created meanwhile (a server still serving the project) goes too.
        counts["project_keks"] += purge_repo.shred_project_keks(conn, project_id)
    return counts
