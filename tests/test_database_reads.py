"""``Database.read`` and the pool's round trips: on PostgreSQL a read runs without a transaction of its own
(no BEGIN, no ROLLBACK at check-in), and the pooled connection it used still gives writes their transaction
afterwards; a server connection is pinged only after sitting idle, and a dead one is replaced. On every
database: what a read sees, and that a failed write after a read leaves nothing behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, func, insert, select
from sqlalchemy.pool import NullPool

from donjon.storage.database import Database


@pytest.fixture
def probe(database_url: str) -> Iterator[tuple[Database, Table]]:
    db = Database(database_url, pool_size=1)  # one connection: reads and writes share it, in turn
    table = Table(f"read_probe_{uuid.uuid4().hex[:8]}", MetaData(), Column("n", Integer, nullable=False))
    with db.write() as conn:
        table.create(conn)
    yield db, table
    with db.write() as conn:
        table.drop(conn)
    db.dispose()


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _transaction_open(conn: Connection) -> bool:
    """Whether the PostgreSQL session behind ``conn`` is inside a transaction (psycopg's view of it)."""
    from psycopg import pq

    status = conn.connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr]
    return bool(status != pq.TransactionStatus.IDLE)


def test_a_read_sees_what_was_committed_and_a_failed_write_after_it_leaves_nothing(
    probe: tuple[Database, Table],
) -> None:
    db, table = probe
    with db.write() as conn:
        conn.execute(insert(table).values(n=1))
    with db.read() as conn:
        assert _count(conn, table) == 1
    with pytest.raises(RuntimeError), db.write() as conn:  # the same pooled connection, back in a transaction
        conn.execute(insert(table).values(n=2))
        raise RuntimeError("the write fails after its insert")
    with db.read() as conn:
        assert _count(conn, table) == 1


def test_on_postgresql_a_read_opens_no_transaction_and_a_write_still_does(probe: tuple[Database, Table]) -> None:
    db, table = probe
    if db.dialect != "postgresql":
        pytest.skip("SQLite reads on the loop's own connection; MariaDB would pay a round trip to switch")
    with db.read() as conn:
        _count(conn, table)
        assert not _transaction_open(conn)  # no BEGIN was sent, so no ROLLBACK is owed at check-in
    with db.write() as conn:
        conn.execute(insert(table).values(n=3))
        assert _transaction_open(conn)
    with db.read() as conn:
        _count(conn, table)
        assert not _transaction_open(conn)


def _server_side_id(conn: Connection, dialect: str) -> int:
    query = "SELECT pg_backend_pid()" if dialect == "postgresql" else "SELECT CONNECTION_ID()"
    return int(conn.exec_driver_sql(query).scalar_one())


def _kill(db: Database, session: int) -> None:
    """End ``session`` from another connection, as a database restart or an idle timeout would."""
    other = create_engine(db.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with other.connect() as conn:
        if db.dialect == "postgresql":
            conn.execute(select(func.pg_terminate_backend(session)))
        else:
            conn.exec_driver_sql(f"KILL {int(session)}")
    other.dispose()


def test_a_connection_is_pinged_only_after_sitting_idle_and_a_dead_one_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("donjon.storage.database.PING_AFTER_IDLE", 0.3)
    db = Database(database_url, pool_size=1)
    if db.dialect == "sqlite":
        db.dispose()
        pytest.skip("no server connection to lose")
    pings: list[object] = []
    real_ping = db.engine.dialect.do_ping

    def counted_ping(conn: Any) -> bool:
        pings.append(conn)
        return bool(real_ping(conn))

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted_ping)
    with db.read() as conn:
        first = _server_side_id(conn, db.dialect)
    with db.read() as conn:  # checked in moments ago: no round trip to ping it
        assert _server_side_id(conn, db.dialect) == first
    assert pings == []
    _kill(db, first)
    time.sleep(0.4)  # idle past the threshold: the next checkout pings, finds it dead, and connects anew
    with db.read() as conn:
        assert _server_side_id(conn, db.dialect) != first
    assert len(pings) == 1
    db.dispose()
