"""A database that is down is a 503 with Retry-After (Barbican's error shape), says so in the log, and service
resumes by itself when the database is back: no restart, nothing acknowledged lost.

The outage test runs a real server on a PostgreSQL instance of its own (``tests.components.postgresql``),
stopped and started again under concurrent writes.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings
from donjon.storage.database import Database, DatabaseUnavailable, unavailable_cause
from tests import databases
from tests.components.postgresql import postgres_instance
from tests.conftest import BASE
from tests.live_server import LiveServer, free_port
from tests.writers import Writers, read_back, wait_for

UNREACHABLE = {
    "code": 503,
    "title": "Service Unavailable",
    "description": "The database is unreachable; try again later.",
}


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", "mysql+pymysql://root@127.0.0.1:{port}/mysql"],
    ids=["postgresql", "mariadb"],
)
def test_an_unreachable_database_is_503_with_retry_after(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=url.format(port=free_port()),  # nothing listens there
        data_dir=tmp_path,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(tmp_path / "root.key")}),
        orders={"run_in_server": False},
        lifecycle={"run_in_server": False},
    )
    headers = {"X-Project-Id": "p"}
    with caplog.at_level(logging.WARNING, logger="donjon.api"), TestClient(create_app(settings), base_url=BASE) as c:
        for method, path, body in (
            ("GET", "/v1/secrets", None),
            ("POST", "/v1/secrets", {"name": "n", "payload": "s3cr3t", "payload_content_type": "text/plain"}),
            ("GET", f"/v1/secrets/{uuid.uuid4()}", None),
            ("POST", "/v1/orders", {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}),
        ):
            r = c.request(method, path, headers=headers, json=body)
            assert r.status_code == 503, r.text
            assert r.json() == UNREACHABLE
            assert r.headers["Retry-After"] == "5"
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("Secret creation: the database is unreachable (" in m for m in messages), messages
    assert not any("unexpected" in m or "s3cr3t" in m for m in messages)


def test_sqlite_busy_is_unavailable_but_its_programming_errors_are_not(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with pytest.raises(sa_exc.OperationalError) as busy, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert unavailable_cause(busy.value) == "sqlite3.OperationalError SQLITE_BUSY"
        holder.execute("ROLLBACK")
        with pytest.raises(sa_exc.OperationalError) as wrong, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert unavailable_cause(wrong.value) is None
        db = Database(f"sqlite:///{path}")
        with pytest.raises(sa_exc.OperationalError), db.read() as conn:  # a bug stays a bug (500)
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        holder.close()
        engine.dispose()


def test_the_driver_text_never_reaches_the_error(tmp_path: Path) -> None:
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(DatabaseUnavailable) as caught, db.read() as conn:
        conn.execute(text("SELECT :secret"), {"secret": "s3cr3t"})
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "s3cr3t" not in repr(caught.value) and "s3cr3t" not in caught.value.cause
    db.dispose()


# --- a real outage, under load -------------------------------------------------------------------------


@pytest.mark.live
def test_postgresql_outage_under_load_is_503_then_recovers_without_restart(tmp_path: Path) -> None:
    with postgres_instance() as pg:
        server = LiveServer(tmp_path / "data", env={"DONJON_DATABASE_URL": pg.url}).start()
        project = f"outage-{uuid.uuid4()}"
        try:
            with Writers(server, project) as writers:
                assert wait_for(lambda: writers.statuses_since(0).count(201) >= 20, 30)
                # Reads too (PostgreSQL's run on the event loop, on connections of their own): these leave
                # connections in the loop's pool that the crash below cuts.
                early = dict(list(writers.acknowledged.items())[:8])
                assert read_back(server, project, early) == early
                pg.stop("immediate")  # a crash of the database: connections cut, recovery on start
                down = time.monotonic()
                assert wait_for(lambda: writers.statuses_since(down).count(503) >= 10, 30)
                assert set(read_back(server, project, early).values()) == {b"HTTP 503"}
                pg.start()
                up = time.monotonic()
                assert wait_for(lambda: writers.statuses_since(up).count(201) >= 20, 60), "no recovery"
            stored_before = len(writers.acknowledged)
            statuses = {status for _, status, _, _ in writers.answers}
            assert statuses <= {201, 503}, statuses
            for _, status, body, retry_after in writers.answers:
                if status == 503:
                    assert body == UNREACHABLE and retry_after == "5"
            # Every acknowledged secret is there, byte for byte, from the same (never restarted) server.
            assert read_back(server, project, writers.acknowledged) == writers.acknowledged
            assert stored_before >= 40
        finally:
            server.stop()
        log = server.log.read_text()
        assert "Secret creation: the database is unreachable (psycopg." in log
        assert "unexpected" not in log


@pytest.mark.parametrize("kind", [k for k in ("postgresql", "mariadb") if k in databases.selected()])
def test_a_statement_the_database_refuses_is_not_an_outage(kind: str, tmp_path: Path) -> None:
    # Both are the drivers' OperationalError, and neither means the database is unreachable: a 500 each.
    statements = {
        "postgresql": ["SET statement_timeout = 1", "SELECT pg_sleep(1)"],  # 57014 query_canceled
        "mariadb": [  # 1833: a referenced column cannot change
            "CREATE TABLE parent (id VARCHAR(8) PRIMARY KEY)",
            "CREATE TABLE child (pid VARCHAR(8), FOREIGN KEY (pid) REFERENCES parent (id))",
            "ALTER TABLE parent MODIFY id VARCHAR(9)",
        ],
    }[kind]
    url = databases.fresh_database(kind, tmp_path)
    engine = create_engine(url)
    try:
        with pytest.raises(sa_exc.OperationalError) as refused, engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        assert unavailable_cause(refused.value) is None
    finally:
        engine.dispose()
        databases.drop_database(kind, url)
