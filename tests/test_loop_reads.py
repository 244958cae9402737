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
from sqlalchemy import create_engine, text

from donjon.blocking import WouldBlock, may_block, run_awaiting
from donjon.storage.database import Database
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
