"""Group commit: concurrent small writes share one transaction and one fsync.

SQLite has one writer at a time and, with synchronous=FULL, an fsync per commit; each secret created in its
own transaction made the store path wait in line for the disk. Over the network (PostgreSQL, MariaDB) each
transaction costs its round trips and a worker thread per write. Here the first writer to arrive becomes the
leader: it opens one transaction, runs every write queued by then (its own included), commits once, and only
then answers every caller. If one write of several raises, the transaction is rolled back and the batch runs
again so that the failure undoes that write alone: on SQLite each write in a SAVEPOINT, elsewhere each in a
transaction of its own (a failing write is rare: a quota reached, a KEK retired meanwhile, a deadlock; its
work is run twice, so it must have no effect outside the transaction). Writes that arrive while a leader
commits wait for the next batch, whose leader is one of them. Nothing is answered before its batch is
durable, so an acknowledged write survives kill -9 and power loss exactly as before.

Why not savepoints over the network: the writes of a batch hold their row locks (a project's quota lock, a
unique key) until the batch commits, so two processes' batches that lock two projects in opposite orders
deadlock, and the database aborts one of them. Run again in SAVEPOINTs of one transaction, its writes would
hold their locks together again and could meet another deadlock, which would then fail a write; each in a
transaction of its own holds one write's locks at a time.

A write's work runs on the leader's thread: it must not depend on thread-local state of its caller.

The event loop does not wait in a thread for its writes: ``run_async`` queues the write with a future and a
committer thread (one per process, started on first use) leads the batches that hold such writes, as a
calling thread would, and answers the loop once per batch (``call_soon_threadsafe``). The writes of one batch
are thus answered in the same turn of the loop, and what their requests do next (the audit's outcome records)
goes out together too, instead of one worker thread per write coming back to the loop on its own.

Where the database driver can wait on the event loop (PostgreSQL through psycopg, ``loop_reads``), the loop
leads its own batches instead: a task of the loop runs each batch's transaction in a greenlet there
(``loop_transaction``), every round trip awaited, and settles the batch's futures when it is committed. No
thread takes part, and no GIL changes hands per batch. The loop's batches and the threads' are separate
transactions, which such a database runs side by side.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.util import greenlet_spawn

from donjon.io_threads import without_wakeup_preemption
from donjon.loop_futures import settle_from_thread
from donjon.observability import metrics

T = TypeVar("T")


class _Write(Generic[T]):
    __slots__ = ("work", "done", "result", "error", "loop", "future")

    def __init__(
        self,
        work: Callable[[Connection], T],
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.loop = loop  # set for a write queued from an event loop (run_async): its future is resolved there
        self.future = future

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set with done when work returned


class GroupCommit:
    """Runs writes in shared transactions opened by ``transaction`` (which takes the database's write lock).

    ``max_batch`` bounds how many writes one transaction carries, so a burst cannot hold the write lock for
    long while other processes wait for it. ``savepoints`` says how a batch where a write raised runs again:
    each write in a SAVEPOINT of one transaction (SQLite: one commit, one fsync), or each in its own.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Connection]],
        *,
        savepoints: bool,
        max_batch: int = 64,
        loop_transaction: Callable[[], AbstractContextManager[Connection]] | None = None,
    ) -> None:
        self._transaction = transaction
        self._loop_transaction = loop_transaction
        # Per event loop (with loop_transaction): the writes queued for its next batch, there only while that
        # loop's leader runs; the leaders' tasks are held here (the loop keeps only a weak reference to a task).
        self._loop_queues: dict[asyncio.AbstractEventLoop, list[_Write[object]]] = {}
        self._loop_leaders: set[asyncio.Task[None]] = set()
        self._savepoints = savepoints
        self._max_batch = max_batch
        self._queue: list[_Write[object]] = []
        self._leading = False
        self._changed = threading.Condition()
        self._committer: threading.Thread | None = None
        self._committer_pid = 0
        self._closing = False
        self.async_writes = 0  # writes queued by run_async (tests, benchmarks)

    @property
    def queued(self) -> int:
        """Writes waiting for the next batch (for metrics and tests)."""
        with self._changed:
            return len(self._queue)

    def run(self, work: Callable[[Connection], T]) -> T:
        write: _Write[T] = _Write(work)
        with self._changed:
            self._queue.append(write)  # type: ignore[arg-type]
            while self._leading and not write.done:
                self._changed.wait()
            if write.done:
                return write.outcome()
            batch = self._take()
        self._lead(batch)
        return write.outcome()

    async def run_async(self, work: Callable[[Connection], T]) -> T:
        """``run`` for the event loop: returns once the write's batch is committed, without a thread of its own."""
        loop = asyncio.get_running_loop()
        write: _Write[T] = _Write(work, loop, loop.create_future())
        if self._loop_transaction is not None:
            return await self._run_on_loop(loop, write)
        with self._changed:
            if self._closing:
                raise RuntimeError("the database is closing")
            if self._committer is None or self._committer_pid != os.getpid():
                # First use, or a forked child: threads do not survive fork.
                self._committer_pid = os.getpid()
                self._committer = threading.Thread(target=self._commit_queued, name="donjon-db-commit", daemon=True)
                self._committer.start()
            self._queue.append(write)  # type: ignore[arg-type]
            self.async_writes += 1
            self._changed.notify_all()
        assert write.future is not None
        # Cancelled (the client went away), the write may still be committed with its batch: as a thread's.
        await write.future
        return write.outcome()

    async def _run_on_loop(self, loop: asyncio.AbstractEventLoop, write: _Write[T]) -> T:
        if self._closing:
            raise RuntimeError("the database is closing")
        self.async_writes += 1
        queue = self._loop_queues.get(loop)
        if queue is not None:  # a batch of this loop's is being committed: join the next one
            queue.append(write)  # type: ignore[arg-type]
        else:
            self._loop_queues[loop] = [write]  # type: ignore[list-item]
            leader = loop.create_task(self._lead_on_loop(loop))
            self._loop_leaders.add(leader)
            leader.add_done_callback(self._loop_leaders.discard)
        assert write.future is not None
        # Cancelled (the client went away), the write may still be committed with its batch.
        await asyncio.shield(write.future)
        return write.outcome()

    async def _lead_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop's batches, one after the other, until no write is queued."""
        assert self._loop_transaction is not None
        try:
            while queue := self._loop_queues.get(loop):
                batch, self._loop_queues[loop] = queue[: self._max_batch], queue[self._max_batch :]
                try:
                    # Not marked as on the loop (donjon.blocking): a write's work is database statements only,
                    # and must not step aside to a thread half-way through its batch.
                    await greenlet_spawn(self._commit, batch, self._loop_transaction)
                finally:
                    for write in batch:
                        if write.future is not None and not write.future.done():
                            write.future.set_result(None)
        finally:
            self._loop_queues.pop(loop, None)

    def _commit_queued(self) -> None:
        """The committer thread: leads every batch nobody else is leading, until ``close``."""
        without_wakeup_preemption()
        while True:
            with self._changed:
                while self._leading or not self._queue:
                    if self._closing and not self._queue:
                        return
                    self._changed.wait()
                batch = self._take()
            self._lead(batch)

    def _take(self) -> list[_Write[object]]:
        """Become the leader of the next batch (the condition's lock held)."""
        self._leading = True
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        return batch

    def _lead(self, batch: list[_Write[object]]) -> None:
        try:
            self._commit(batch)
        finally:
            with self._changed:
                self._leading = False
                self._changed.notify_all()
            # A write's outcome is on the write itself: its future only says that the batch is done.
            settle_from_thread((w.loop, w.future) for w in batch if w.loop is not None and w.future is not None)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued and stop the committer thread; a later ``run_async`` starts a new one."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            committer = self._committer if self._committer_pid == os.getpid() else None
        if committer is not None and committer is not threading.current_thread():
            committer.join(timeout)
        with self._changed:
            self._closing = False
            self._committer = None

    def _commit(
        self,
        batch: list[_Write[object]],
        transaction: Callable[[], AbstractContextManager[Connection]] | None = None,
    ) -> None:
        transaction = transaction or self._transaction
        try:
            if not self._commit_together(batch, transaction):
                self._commit_each(batch, transaction)
        except BaseException as exc:  # the commit failed (or the lock could not be had): nothing was written
            for write in batch:
                if write.error is None:
                    write.error = exc
                    write.result = None
        finally:
            metrics.DB_GROUP_COMMIT_SIZE.observe(len(batch))
            for write in batch:
                write.done = True

    def _commit_together(
        self, batch: list[_Write[object]], transaction: Callable[[], AbstractContextManager[Connection]]
    ) -> bool:
        """Every write of the batch in one transaction, no SAVEPOINT each (two statements per write, a sixth of
        a secret creation's CPU). False if one of several raised: all was rolled back, for ``_commit_each``.
        A write alone needs no savepoint: rolling its transaction back undoes that write and nothing else, and
        its exception is raised as the transaction raises it."""
        try:
            with transaction() as conn:
                for write in batch:
                    try:
                        write.result = write.work(conn)
                    except Exception as exc:
                        if len(batch) == 1:
                            # Out through the transaction, which rolls it back and turns a lost database
                            # into Unavailable (503); ``_commit`` gives the write what comes out.
                            raise
                        raise _RolledBack from exc
        except _RolledBack:
            for write in batch:
                write.result = None
            return False
        return True

    def _commit_each(
        self, batch: list[_Write[object]], transaction: Callable[[], AbstractContextManager[Connection]]
    ) -> None:
        """The batch again, each write in a SAVEPOINT or a transaction of its own: one that raises is rolled
        back alone, the others go on."""
        if not self._savepoints:
            for write in batch:
                try:
                    with transaction() as conn:
                        write.result = write.work(conn)
                except Exception as exc:
                    write.error = exc
            return
        with transaction() as conn:
            for write in batch:
                try:
                    with conn.begin_nested():
                        write.result = write.work(conn)
                except Exception as exc:
                    write.error = exc


class _RolledBack(Exception):
    """A write of a batch run without savepoints raised: its transaction is rolled back."""
