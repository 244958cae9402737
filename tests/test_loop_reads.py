"""PostgreSQL reads on the event loop (storage/loop_reads.py, blocking.run_awaiting), on the real server.

A read waiting for the database must leave the loop free for other requests, run on the loop's own thread,
use an engine of that loop's, and leave no connection open once the database is disposed of.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import QueuePool

from donjon.blocking import WouldBlock, may_block, run_awaiting
from donjon.storage import database
from donjon.storage.database import Database, DatabaseUnavailable
from tests import databases

pytestmark = pytest.mark.skipif(
    "postgresql" not in databases.selected(), reason="PostgreSQL is not among DONJON_TEST_DATABASES"
)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with databases.migrated_database("postgresql", tmp_path) as url:
        yield url


def _backend(db: Database, statement: str = "SELECT pg_backend_pid()") -> tuple[int, str]:
    """Run on the loop through ``run_awaiting``: the server process that answered, and the thread that asked."""
    with db.read() as conn:
        pid = int(conn.execute(text(statement)).scalar_one())
    return pid, threading.current_thread().name


def _open_backends(url: str) -> set[int]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            )
            return {int(pid) for (pid,) in rows}
    finally:
        engine.dispose()


def test_a_read_waiting_for_the_server_leaves_the_loop_to_others(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)
    finished: list[str] = []

    async def read(name: str, statement: str) -> tuple[int, str]:
        answer = await run_awaiting(_backend, db, statement)
        finished.append(name)
        return answer

    async def both() -> list[tuple[int, str]]:
        slow = asyncio.ensure_future(read("slow", "SELECT pg_backend_pid() FROM pg_sleep(0.5)"))
        await asyncio.sleep(0.05)  # the slow one is waiting for its answer by now
        started = time.monotonic()
        fast = await read("fast", "SELECT pg_backend_pid()")
        assert time.monotonic() - started < 0.4  # not queued behind the slow read
        return [await slow, fast]

    try:
        (slow_pid, slow_thread), (fast_pid, fast_thread) = asyncio.run(both())
    finally:
        db.dispose()
    # A blocking driver would have held the loop for the whole sleep: the fast read would finish second.
    assert finished == ["fast", "slow"]
    assert slow_pid != fast_pid  # two connections of the loop's pool, both in use at once
    assert slow_thread == fast_thread == threading.current_thread().name  # the loop's thread, no worker


def test_each_loop_has_its_engine_and_dispose_closes_every_connection(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)
    pids = {asyncio.run(run_awaiting(_backend, db))[0] for _ in range(2)}  # two loops, one after the other
    try:
        assert len(pids) == 2  # a connection of each loop's own engine
        assert pids <= _open_backends(pg_url)  # kept in their pools for the next read
    finally:
        db.dispose()
    assert not pids & _open_backends(pg_url)


def test_dispose_on_a_running_loop_closes_its_connections(pg_url: str) -> None:
    """The app's lifespan disposes of the database on the loop whose reads opened the connections."""
    db = Database(pg_url, pool_size=2)

    async def read_then_dispose() -> int:
        pid, _ = await run_awaiting(_backend, db)
        db.dispose()
        return pid

    pid = asyncio.run(read_then_dispose())
    assert pid not in _open_backends(pg_url)


def test_a_step_that_would_block_gives_the_connection_back_and_moves_nothing(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)

    def read_then_block() -> None:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
            may_block("a keystore unwrap")

    async def run() -> tuple[int, str]:
        with pytest.raises(WouldBlock):
            await run_awaiting(read_then_block)
        return await run_awaiting(_backend, db)  # the connection went back to the pool, and the next read works

    try:
        _, thread = asyncio.run(run())
    finally:
        db.dispose()
    assert thread == threading.current_thread().name


# --- a read's connection kept by its loop for the next read ---------------------------------------------


def _reading_engine(db: Database) -> Engine:
    """The engine the running loop reads with."""
    assert db._loop_engines is not None  # PostgreSQL through psycopg
    return db._loop_engines.for_running_loop()


def _checked_out(db: Database) -> int:
    """Connections of that engine's pool checked out now (in use, or kept by the loop)."""
    pool = _reading_engine(db).pool
    assert isinstance(pool, QueuePool)  # SQLAlchemy's asyncio pool is one
    return pool.checkedout()


def _checkouts(db: Database) -> list[int]:
    """Checkouts from the pool of the engine the running loop reads with (counted from now on)."""
    seen: list[int] = []
    event.listen(_reading_engine(db), "checkout", lambda *_: seen.append(1))
    return seen


def test_the_loop_keeps_a_read_connection_for_its_next_read(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)

    async def reads() -> tuple[set[int], int, int]:
        checkouts = _checkouts(db)
        pids = {(await run_awaiting(_backend, db))[0] for _ in range(5)}
        return pids, len(checkouts), _checked_out(db)

    try:
        pids, checkouts, checked_out = asyncio.run(reads())
    finally:
        db.dispose()
    assert len(pids) == 1  # the same server connection for every read
    assert checkouts == 1  # taken from the pool once, then kept
    assert checked_out == 1  # kept by the loop, not returned to the pool
    assert not pids & _open_backends(pg_url)  # dispose closed the kept one too


def test_a_connection_kept_past_the_idle_span_goes_back_to_the_pool(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.05)
    db = Database(pg_url, pool_size=2)

    async def reads() -> int:
        checkouts = _checkouts(db)
        await run_awaiting(_backend, db)
        await asyncio.sleep(0.1)  # longer than the span: back to the pool, checked out again (and pinged)
        await run_awaiting(_backend, db)
        await run_awaiting(_backend, db)  # right after: kept
        return len(checkouts)

    try:
        checkouts = asyncio.run(reads())
    finally:
        db.dispose()
    assert checkouts == 2


def test_concurrent_reads_keep_at_most_the_pool_size(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)  # two in the pool, two more in its overflow

    async def reads() -> tuple[set[int], int]:
        statement = "SELECT pg_backend_pid() FROM pg_sleep(0.2)"
        answers = await asyncio.gather(*(run_awaiting(_backend, db, statement) for _ in range(3)))
        return {pid for pid, _ in answers}, _checked_out(db)

    try:
        pids, checked_out = asyncio.run(reads())
    finally:
        db.dispose()
    assert len(pids) == 3  # three at once: three connections, one from the pool's overflow
    assert checked_out == 2  # two kept; the third went back, leaving the overflow free for the group commits


def test_a_cut_connection_is_a_503_and_the_next_read_gets_a_working_one(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")

    async def reads() -> tuple[int, set[int]]:
        statement = "SELECT pg_backend_pid() FROM pg_sleep(0.1)"
        first = await asyncio.gather(*(run_awaiting(_backend, db, statement) for _ in range(2)))
        with admin.connect() as conn:  # what a database restart does to every connection the loop kept
            for pid, _ in first:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DatabaseUnavailable):
            await run_awaiting(_backend, db)
        pid, _ = await run_awaiting(_backend, db)  # no second 503: the other kept connection was let go too
        return pid, {p for p, _ in first}

    try:
        pid, cut = asyncio.run(reads())
    finally:
        db.dispose()
        admin.dispose()
    assert len(cut) == 2  # both were kept by the loop when the database cut them
    assert pid not in cut


def test_an_invalidation_in_the_pool_lets_the_kept_connections_go(pg_url: str) -> None:
    """A write that meets a lost connection invalidates it: the connections the loop kept from before are not
    reused (a database restart cut them all), as the pool replaces its own."""
    db = Database(pg_url, pool_size=2)

    def invalidate_one() -> None:
        assert db._loop_engines is not None
        with db._loop_engines.writer_for_running_loop().connect() as conn:
            conn.invalidate()

    async def reads() -> tuple[int, int, int]:
        before, _ = await run_awaiting(_backend, db)
        again, _ = await run_awaiting(_backend, db)
        await run_awaiting(invalidate_one)
        after, _ = await run_awaiting(_backend, db)
        return before, again, after

    try:
        before, again, after = asyncio.run(reads())
    finally:
        db.dispose()
    assert again == before  # kept
    assert after != before  # let go after the invalidation
