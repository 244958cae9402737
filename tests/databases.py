"""The databases the suite runs on. Each gets a fresh, migrated database per test session.

``DONJON_TEST_DATABASES`` (comma list, default all three) chooses; URLs of the servers come from
``DONJON_TEST_POSTGRESQL_URL`` / ``DONJON_TEST_MARIADB_URL`` (defaults: the local servers, trust/empty auth).
A listed database that cannot be reached fails the run: it is never silently skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from donjon.storage import migrate
from donjon.storage.database import Database

DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/mysql",
}


def selected() -> list[str]:
    raw = os.environ.get("DONJON_TEST_DATABASES", "sqlite,postgresql,mariadb")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = set(names) - {"sqlite", "postgresql", "mariadb"}
    if unknown:
        raise ValueError(f"DONJON_TEST_DATABASES: unknown {sorted(unknown)}")
    return names


def fresh_database(kind: str, tmp: Path) -> str:
    """Create an empty database of ``kind`` for this session and return its URL."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'donjon-test.sqlite'}"
    server_url = make_url(os.environ.get(f"DONJON_TEST_{kind.upper()}_URL", DEFAULT_URLS[kind]))
    name = f"donjon_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.set(database=name).render_as_string(hide_password=False)


def drop_database(kind: str, url: str) -> None:
    if kind == "sqlite":
        return
    parsed = make_url(url)
    server_url = make_url(os.environ.get(f"DONJON_TEST_{kind.upper()}_URL", DEFAULT_URLS[kind]))
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if kind == "postgresql":
            conn.execute(text(f"DROP DATABASE IF EXISTS {parsed.database} WITH (FORCE)"))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS {parsed.database}"))
    engine.dispose()


@contextmanager
def migrated_database(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh database of ``kind`` with donjon's schema, for as long as the block lasts; its URL."""
    url = fresh_database(kind, tmp)
    db = Database(url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    try:
        yield url
    finally:
        drop_database(kind, url)
