"""Group commit: concurrent small writes share one transaction and one fsync.

SQLite has one writer at a time and, with synchronous=FULL, an fsync per commit; each secret created in its
own transaction made the store path wait in line for the disk. Here the first writer to arrive becomes the
leader: it opens one transaction, runs every write queued by then (its own included), each in a SAVEPOINT so
that one write's failure rolls back that write alone, commits once, and only then answers every caller. Writes
that arrive while a leader commits wait for the next batch, whose leader is one of them. Nothing is answered
before its batch is durable, so an acknowledged write survives kill -9 and power loss exactly as before.

A write's work runs on the leader's thread: it must not depend on thread-local state of its caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from sqlalchemy import Connection

from donjon.observability import metrics

T = TypeVar("T")


class _Write(Generic[T]):
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set with done when work returned


class GroupCommit:
    """Runs writes in shared transactions opened by ``transaction`` (which takes the database's write lock).

    ``max_batch`` bounds how many writes one transaction carries, so a burst cannot hold the write lock for
    long while other processes wait for it.
    """

    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]], *, max_batch: int = 64) -> None:
        self._transaction = transaction
        self._max_batch = max_batch
        self._queue: list[_Write[object]] = []
        self._leading = False
        self._changed = threading.Condition()

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
            self._leading = True
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            self._commit(batch)
        finally:
            with self._changed:
                self._leading = False
                self._changed.notify_all()
        return write.outcome()

    def _commit(self, batch: list[_Write[object]]) -> None:
        try:
            with self._transaction() as conn:
                for write in batch:
                    try:
                        with conn.begin_nested():
                            write.result = write.work(conn)
                    except Exception as exc:  # this write alone is rolled back; the others go on
                        write.error = exc
        except BaseException as exc:  # the commit failed (or the lock could not be had): nothing was written
            for write in batch:
                if write.error is None:
                    write.error = exc
                    write.result = None
        finally:
            metrics.DB_GROUP_COMMIT_SIZE.observe(len(batch))
            for write in batch:
                write.done = True
