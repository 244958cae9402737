"""Group commit: concurrent writes share a transaction on every database, and each keeps its own outcome."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, event, insert, select

from donjon.storage.database import Database, DatabaseUnavailable

WRITERS = 24


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def table(db: Database) -> Iterator[Table]:
    metadata = MetaData()
    probe = Table(
        f"group_commit_probe_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("writer", String(40), nullable=False),
    )
    with db.write() as conn:
        metadata.create_all(conn)
    yield probe
    with db.write() as conn:
        metadata.drop_all(conn)


def _rows(db: Database, table: Table) -> set[int]:
    with db.read() as conn:
        return set(conn.scalars(select(table.c.id)))


def _wait_until(condition: object, seconds: float = 30) -> None:
    # A generous bound for a loaded machine; the condition is usually met within milliseconds.
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the writers never queued up"
        time.sleep(0.005)


def test_concurrent_writes_share_one_commit(db: Database, table: Table) -> None:
    group = db._group_commit
    assert group is not None
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))

    def write(n: int) -> int:
        def work(conn: Connection) -> int:
            if n == 0:  # the first leader holds its transaction until every other writer has queued
                _wait_until(lambda: group.queued == WRITERS - 1)
            conn.execute(insert(table).values(id=n, writer=f"w{n}"))
            return n * 10

        return db.write_grouped(work)

    with ThreadPoolExecutor(WRITERS) as pool:
        first = pool.submit(write, 0)
        _wait_until(lambda: group.queued == 0 and group._leading)
        rest = [pool.submit(write, n) for n in range(1, WRITERS)]
        results = [first.result(timeout=30)] + [f.result(timeout=30) for f in rest]

    assert results == [n * 10 for n in range(WRITERS)]
    assert _rows(db, table) == set(range(WRITERS))
    assert len(commits) == 2  # the first writer's batch, then the 23 that queued behind it, together


def test_a_failing_write_is_rolled_back_alone(db: Database, table: Table) -> None:
    start = threading.Barrier(WRITERS)

    def write(n: int) -> str:
        def work(conn: Connection) -> str:
            conn.execute(insert(table).values(id=n, writer=f"w{n}"))
            if n % 3 == 0:
                raise ValueError(f"writer {n} refuses")
            return f"w{n}"

        start.wait()
        try:
            return db.write_grouped(work)
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(write, range(WRITERS)))

    assert results == [f"writer {n} refuses" if n % 3 == 0 else f"w{n}" for n in range(WRITERS)]
    assert _rows(db, table) == {n for n in range(WRITERS) if n % 3}


def test_a_batch_where_a_write_failed_runs_again_write_by_write(db: Database, table: Table) -> None:
    group = db._group_commit
    assert group is not None
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))
    savepoints: list[str] = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: savepoints.append(statement) if "SAVEPOINT" in statement else None,
    )
    runs: dict[int, int] = {}

    def batch_of(writers: list[int], failing: int | None) -> list[str]:
        """``writers`` committed as one batch (the first holds its transaction until the rest have queued)."""

        def write(n: int) -> str:
            def work(conn: Connection) -> str:
                runs[n] = runs.get(n, 0) + 1
                if n == writers[0] and runs[n] == 1:
                    _wait_until(lambda: group.queued == len(writers) - 1)
                conn.execute(insert(table).values(id=n, writer=f"w{n}"))
                if n == failing:
                    raise ValueError(f"writer {n} refuses")
                return f"w{n}"

            try:
                return db.write_grouped(work)
            except ValueError as exc:
                return str(exc)

        with ThreadPoolExecutor(len(writers)) as pool:
            first = pool.submit(write, writers[0])
            _wait_until(lambda: group.queued == 0 and group._leading)
            # The first writer's own batch is itself; the others queue behind it and make the next batch.
            rest = [pool.submit(write, n) for n in writers[1:]]
            return [first.result(timeout=30)] + [f.result(timeout=30) for f in rest]

    assert batch_of([1, 2, 3, 4], failing=None) == ["w1", "w2", "w3", "w4"]
    assert savepoints == []  # nothing failed: no SAVEPOINT, no RELEASE
    assert len(commits) == 2  # 1 alone, then 2, 3 and 4 together
    assert batch_of([5, 6, 7, 8], failing=7) == ["w5", "w6", "writer 7 refuses", "w8"]
    assert _rows(db, table) == {1, 2, 3, 4, 5, 6, 8}
    # The batch of 6, 7, 8 ran together until 7 raised (those queued before it ran too), was rolled back, and ran
    # again write by write: on SQLite each in its SAVEPOINT of one transaction, elsewhere each in a transaction
    # of its own (7's rolled back).
    assert runs[7] == 2 and {runs[6], runs[8]} <= {1, 2}
    if db.dialect == "sqlite":
        assert len([s for s in savepoints if s.startswith("SAVEPOINT")]) == 3
        assert len(commits) == 2 + 2
    else:
        assert savepoints == []
        assert len(commits) == 2 + 3


def _one_batch(
    database: Database, works: list[Callable[[Connection], str]], pool: ThreadPoolExecutor
) -> list[Future[str]]:
    """Submit ``works`` so that they make one batch: a first write leads a batch of its own and holds it until
    they have all queued behind it, in order."""
    group = database._group_commit
    hold = pool.submit(database.write_grouped, lambda _conn: _wait_until(lambda: group.queued == len(works)))
    _wait_until(lambda: group.queued == 0 and group._leading)
    futures = []
    for queued, work in enumerate(works, 1):
        futures.append(pool.submit(database.write_grouped, work))
        if queued < len(works):
            # In order: each queues before the next is submitted. Not after the last one: the hold sees it
            # queued, lets its batch commit and the queued writes leave at once, so that a wait here for the
            # full count could miss it and time out (it did once, in a loaded run).
            _wait_until(lambda queued=queued: group.queued == queued)  # type: ignore[misc]
    hold.result(timeout=30)
    return futures


def test_batches_that_deadlock_each_other_lose_no_write(db: Database, table: Table) -> None:
    """Two processes' batches lock two rows in opposite orders (as creates in two projects with finite quotas
    take the projects' locks): the database aborts one, which runs again write by write, and all are kept."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite runs one write transaction at a time: two batches never hold locks together")
    with db.write() as conn:
        conn.execute(insert(table), [{"id": 1, "writer": "-"}, {"id": 2, "writer": "-"}])
    other = Database(db.url)  # another API process's group commit
    both_hold_one = threading.Barrier(2, timeout=20)
    runs: dict[str, int] = {}

    def take(row: int, name: str, *, then_wait: bool) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            runs[name] = runs.get(name, 0) + 1
            conn.execute(table.update().where(table.c.id == row).values(writer=name))
            if then_wait and runs[name] == 1:
                both_hold_one.wait()  # each batch holds its first row before it asks for the other's
            return name

        return work

    try:
        with ThreadPoolExecutor(8) as pool:
            a = _one_batch(db, [take(1, "a1", then_wait=True), take(2, "a2", then_wait=False)], pool)
            b = _one_batch(other, [take(2, "b1", then_wait=True), take(1, "b2", then_wait=False)], pool)
            assert [f.result(timeout=60) for f in a + b] == ["a1", "a2", "b1", "b2"]
    finally:
        other.dispose()
    # One batch met the deadlock, was rolled back and ran again; the other committed as it was.
    assert sorted([runs["a1"], runs["b1"]]) == [1, 2]
    with db.read() as conn:
        writers = {row.id: row.writer for row in conn.execute(select(table.c.id, table.c.writer))}
    assert writers[1] in {"a1", "b2"} and writers[2] in {"a2", "b1"}  # both batches' updates are there


def test_a_write_is_visible_to_others_when_it_returns(db: Database, table: Table) -> None:
    def work(conn: Connection) -> None:
        conn.execute(insert(table).values(id=1, writer="only"))

    db.write_grouped(work)
    other = Database(db.url)
    try:
        with other.read() as conn:
            assert conn.scalar(select(table.c.writer).where(table.c.id == 1)) == "only"
    finally:
        other.dispose()


def test_writes_from_an_event_loop_are_committed_together_and_each_keeps_its_outcome(
    db: Database, table: Table
) -> None:
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))
    threads_done: list[str] = []

    def work_for(n: int) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            conn.execute(insert(table).values(id=n, writer=f"w{n}"))
            if n % 5 == 0:
                raise ValueError(f"writer {n} refuses")
            return f"w{n}"

        return work

    def thread_writer(n: int) -> None:  # a thread's write in the same queue, led by whoever comes first
        threads_done.append(db.write_grouped(work_for(n)))

    async def main() -> list[str]:
        threads = [threading.Thread(target=thread_writer, args=(n,)) for n in (101, 102, 103)]
        for t in threads:
            t.start()
        outcomes = await asyncio.gather(
            *(db.write_grouped_async(work_for(n)) for n in range(1, WRITERS + 1)), return_exceptions=True
        )
        for t in threads:
            t.join()
        return [str(o) for o in outcomes]

    results = asyncio.run(main())
    assert results == [f"writer {n} refuses" if n % 5 == 0 else f"w{n}" for n in range(1, WRITERS + 1)]
    assert sorted(threads_done) == ["w101", "w102", "w103"]
    assert _rows(db, table) == {n for n in range(1, WRITERS + 1) if n % 5} | {101, 102, 103}
    group = db._group_commit
    assert group is not None and group.async_writes == WRITERS
    # All the loop's writes were queued before the loop waited: far fewer commits than writes.
    assert len(commits) < WRITERS


def test_closing_the_database_commits_what_is_queued_and_stops_the_committer(db: Database, table: Table) -> None:
    async def write(n: int) -> None:
        await db.write_grouped_async(lambda conn: conn.execute(insert(table).values(id=n, writer=f"w{n}")))

    asyncio.run(write(1))
    group = db._group_commit
    assert group is not None
    if db.reads_await_on_loop:
        # PostgreSQL through psycopg: the loop led its batch itself, on a connection of its own engine.
        assert group._committer is None and group.async_writes == 1
        db.dispose()
        asyncio.run(write(2))
        assert _rows(db, table) == {1, 2} and group._committer is None
        return
    assert group._committer is not None
    committer = group._committer
    db.dispose()
    assert not committer.is_alive()
    asyncio.run(write(2))  # a later write starts a new one
    assert _rows(db, table) == {1, 2}


def test_a_write_alone_that_loses_its_database_is_unavailable_not_a_bug(db: Database, table: Table) -> None:
    """The driver's error for a lost connection becomes DatabaseUnavailable (503, no statement text), as for a
    write outside the group commit, whether the write came from a thread or from the event loop."""
    if db.dialect == "sqlite":
        pytest.skip("no server connection to lose")
    kill = "SELECT pg_terminate_backend(pg_backend_pid())" if db.dialect == "postgresql" else "KILL CONNECTION_ID()"

    def lose_the_connection(conn: Connection) -> None:
        conn.execute(insert(table).values(id=1, writer="lost"))
        conn.exec_driver_sql(kill)

    with pytest.raises(DatabaseUnavailable):
        db.write_grouped(lose_the_connection)
    with pytest.raises(DatabaseUnavailable):
        asyncio.run(db.write_grouped_async(lose_the_connection))
    db.write_grouped(lambda conn: conn.execute(insert(table).values(id=2, writer="after")))
    assert _rows(db, table) == {2}
