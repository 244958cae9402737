"""The migrations create exactly the schema the code declares, on every database, and downgrade cleanly."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from donjon.storage import migrate
from donjon.storage import tokens as token_rows
from donjon.storage.database import Database
from donjon.storage.tables import metadata, secret_metadata, secrets
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
        # Every key of 0006's tables comes back (later revisions' tables add their own).
        assert before <= foreign_keys() and len(before) >= 15
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


def _insert_secret(conn: Any, secret_id: str, **payload: Any) -> None:
    values = {"kek_id": None, "ciphertext": None, "store": None, "store_ref": None, **payload}
    conn.execute(
        text(
            "INSERT INTO secrets (id, project_id, secret_type, created_at, updated_at, version, kek_id, ciphertext,"
            " store, store_ref) VALUES (:id, 'p', 'opaque', :t, :t, 1, :kek_id, :ciphertext, :store, :store_ref)"
        ),
        {"id": secret_id, "t": datetime(2026, 12, 1), **values},
    )


@pytest.mark.parametrize("kind", databases.selected())
def test_0010_refuses_a_payload_in_two_stores_and_keeps_every_row(kind: str, tmp_path: Path) -> None:
    """0010's CHECK constraints, on a database at 0009 with a secret in each legitimate state and child rows
    (SQLite rebuilds the secrets table: nothing may cascade away); afterwards the database refuses a row with
    both a ciphertext and an external reference, or a store without its reference."""
    url = databases.fresh_database(kind, tmp_path)
    db = Database(url, pool_size=1)
    try:
        migrate.upgrade(db, "0009")
        with db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO project_keks (id, project_id, root_key_id, wrapped_key, created_at)"
                    " VALUES ('k', 'p', 'root', :w, :t)"
                ),
                {"w": b"wrapped", "t": datetime(2026, 12, 1)},
            )
            _insert_secret(conn, "s-empty")
            _insert_secret(conn, "s-sealed", kek_id="k", ciphertext=b"sealed")
            _insert_secret(conn, "s-external", store="vault", store_ref="ref")
            for secret_id in ("s-empty", "s-sealed", "s-external"):
                conn.execute(insert(secret_metadata).values(secret_id=secret_id, key="k", value="v"))
        migrate.upgrade(db)
        with db.read() as conn:
            rows = conn.execute(select(secrets.c.id, secrets.c.kek_id, secrets.c.ciphertext, secrets.c.store_ref))
            assert {r.id: (r.kek_id, r.ciphertext, r.store_ref) for r in rows} == {
                "s-empty": (None, None, None),
                "s-sealed": ("k", b"sealed", None),
                "s-external": (None, None, "ref"),
            }
            assert conn.exec_driver_sql("SELECT count(*) FROM secret_metadata").scalar() == 3
            if kind == "sqlite":  # the pooled connection the migration ran on enforces foreign keys again
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # The database's own refusal names the constraint (MariaDB's error 4025 reaches PyMySQL as an
        # OperationalError, the others' as an IntegrityError).
        refusal = (IntegrityError, OperationalError)
        refused = [
            ({"kek_id": "k", "ciphertext": b"sealed", "store": "vault", "store_ref": "ref"}, "payload_in_one_store"),
            ({"store": "vault"}, "store_with_ref"),
            ({"store_ref": "ref"}, "store_with_ref"),
        ]
        for i, (payload, constraint) in enumerate(refused):
            with pytest.raises(refusal, match=f"ck_secrets_{constraint}"), db.write() as conn:
                _insert_secret(conn, f"s-bad-{i}", **payload)
        with pytest.raises(refusal, match="ck_secrets_payload_in_one_store"), db.write() as conn:
            conn.execute(text("UPDATE secrets SET store = 'vault', store_ref = 'ref' WHERE id = 's-sealed'"))
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM secrets").scalar() == 3
        engine = create_engine(url)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
            # SQLite: the rebuild kept every foreign key enforced and intact.
            if kind == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").first() is None
        engine.dispose()
    finally:
        db.dispose()
        databases.drop_database(kind, url)


@pytest.mark.parametrize("kind", databases.selected())
def test_0010_stops_on_a_row_with_both_and_changes_nothing(kind: str, tmp_path: Path) -> None:
    url = databases.fresh_database(kind, tmp_path)
    db = Database(url, pool_size=1)
    try:
        migrate.upgrade(db, "0009")
        with db.write() as conn:
            _insert_secret(conn, "s-both", ciphertext=b"sealed", store="vault", store_ref="ref")
        with pytest.raises(RuntimeError, match="1 secret row"):
            migrate.upgrade(db)
        assert migrate.current_revision(db) == "0009"
    finally:
        db.dispose()
        databases.drop_database(kind, url)


@pytest.mark.parametrize("kind", databases.selected())
def test_0012_leaves_existing_tokens_unlimited(kind: str, tmp_path: Path) -> None:
    """Tokens issued before use limits existed keep working: num_uses 0 is unlimited, and nothing is spent."""
    url = databases.fresh_database(kind, tmp_path)
    db = Database(url, pool_size=1)
    try:
        migrate.upgrade(db, "0011")
        with db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (id, digest, project_id, user_id, roles, created_at)"
                    " VALUES ('t-old', 'd', 'p', 'u', 'member', :created)"
                ),
                {"created": datetime(2026, 11, 30)},
            )
        migrate.upgrade(db)
        with db.read() as conn:
            record = token_rows.get_token(conn, "t-old")
        assert record is not None and (record.num_uses, record.uses_left) == (0, 0)
        with db.write() as conn:
            assert token_rows.use_once(conn, "t-old", datetime(2026, 12, 1)) is None  # unlimited: nothing to spend
            assert token_rows.get_token(conn, "t-old").revoked_at is None  # type: ignore[union-attr]
    finally:
        db.dispose()
        databases.drop_database(kind, url)
