"""Run Alembic migrations programmatically (``donjon manage db upgrade``, and at server start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from donjon.storage.database import Database


def _config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "donjon.storage:migrations")
    # Alembic's config is ConfigParser-based: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = _config(db)
    # SQLite rebuilds a table to change its constraints: see Database.write.
    with db.write(foreign_keys=False) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(_config(db)).get_current_head()
