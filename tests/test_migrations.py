"""The migrations create exactly the schema the code declares, on every database, and downgrade cleanly."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from donjon.storage import migrate
from donjon.storage.database import Database
from donjon.storage.tables import metadata, secrets
from tests import databases


def test_migrated_schema_matches_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_schema_is_at_head(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    assert migrate.current_revision(db) == migrate.head_revision(db)
    db.dispose()


def test_binary_collation_round_trip_keeps_every_foreign_key(tmp_path: Path) -> None:
    """0007 drops and remakes MariaDB's foreign keys around the collation change: all of them come back."""
    if "mariadb" not in databases.selected():
        pytest.skip("MariaDB is not selected")
    url = databases.fresh_database("mariadb", tmp_path)
    db = Database(url, pool_size=1)
    try:
        migrate.upgrade(db, "0006")

        def foreign_keys() -> set[tuple[str, str]]:
            inspector = inspect(db.engine)
            return {(t, fk["name"]) for t in inspector.get_table_names() for fk in inspector.get_foreign_keys(t)}

        before = foreign_keys()
        migrate.upgrade(db)
        assert foreign_keys() == before and len(before) >= 15
        with db.read() as conn:
            collations = conn.exec_driver_sql(
                "SELECT DISTINCT collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND collation_name IS NOT NULL"
            ).scalars()
            assert set(collations) == {"utf8mb4_bin"}
    finally:
        db.dispose()
        databases.drop_database("mariadb", url)


@pytest.mark.parametrize("kind", databases.selected())
def test_0008_gives_rotated_secrets_their_last_update_as_version_start(kind: str, tmp_path: Path) -> None:
    """Before 0008 nothing recorded when the current version started; updated_at is its latest possible time."""
    url = databases.fresh_database(kind, tmp_path)
    db = Database(url, pool_size=1)
    rotated, updated = datetime(2026, 11, 30, 12, 0, 1, 250000), datetime(2026, 11, 1)
    try:
        migrate.upgrade(db, "0007")
        with db.write() as conn:
            for secret_id, version in (("s-rotated", 3), ("s-plain", 1)):
                conn.execute(
                    text(
                        "INSERT INTO secrets (id, project_id, secret_type, created_at, updated_at, version)"
                        " VALUES (:id, 'p', 'opaque', :created, :updated, :version)"
                    ),
                    {"id": secret_id, "created": updated, "updated": rotated, "version": version},
                )
        migrate.upgrade(db)
        with db.read() as conn:
            rows = conn.execute(select(secrets.c.id, secrets.c.version_started_at))
            started = {row.id: row.version_started_at for row in rows}
        assert started == {"s-rotated": rotated, "s-plain": None}
    finally:
        db.dispose()
        databases.drop_database(kind, url)


@pytest.mark.parametrize("kind", databases.selected())
def test_transport_keys_arrive_on_a_0008_database_with_rows(kind: str, tmp_path: Path) -> None:
    """0009 adds the transport_keys table to a database at 0008 that holds data: the data stays, the table
    takes rows (a key of the longest length accepted; text compared byte for byte), the schema is the code's."""
    url = databases.fresh_database(kind, tmp_path)
    db = Database(url, pool_size=1)
    try:
        migrate.upgrade(db, "0008")
        with db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO project_quotas (project_id, secrets, created_at, updated_at) VALUES ('p', 5, :t, :t)"
                ),
                {"t": datetime(2026, 12, 1)},
            )
        migrate.upgrade(db)
        with db.write() as conn:
            assert conn.exec_driver_sql("SELECT secrets FROM project_quotas WHERE project_id = 'p'").scalar() == 5
            conn.execute(
                text(
                    "INSERT INTO transport_keys (id, plugin_name, transport_key, created_at, updated_at) "
                    "VALUES ('k', 'Kmip', :key, :t, :t)"
                ),
                {"key": "x" * 65535, "t": datetime(2026, 12, 1)},
            )
            assert conn.exec_driver_sql("SELECT count(*) FROM transport_keys WHERE plugin_name = 'kmip'").scalar() == 0
        engine = create_engine(url)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
        engine.dispose()
    finally:
        db.dispose()
        databases.drop_database(kind, url)
