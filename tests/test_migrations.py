"""The migrations create exactly the schema the code declares, on every database, and downgrade cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from donjon.storage import migrate
from donjon.storage.database import Database
from donjon.storage.tables import metadata


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
