"""Group commit: the records that queue up while one batch is being written go out together in the next.

A sink's ``flush(items)`` is slow for a reason that does not grow with the batch (an ``fdatasync``, a lock
shared with other processes), so one writer thread per process takes everything queued, flushes it in one
go and then answers every caller of that batch: with success, or with the flush's exception (fail-closed
turns that into a 503). Nothing waits on purpose: a lone record is flushed as soon as the writer wakes, and
a batch is simply whatever arrived while the previous flush ran, so latency stays that of one flush at low
concurrency and throughput grows with concurrency up to the batch the flush can take.

Its callers are threads without an event loop (the CLI, tests), each blocking on a ``threading.Event``. The
request path batches on its event loop instead (``sinks.FileSink.append_async``): handing records to this
thread and waking the loop back cost more than the write itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Waiter(Generic[T]):
    """One caller's record and where to tell it the outcome."""

    item: T
    event: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Serialises ``flush`` calls of one process and hands each the whole queue."""

    def __init__(self, flush: Callable[[Sequence[T]], None], name: str = "donjon-audit-writer") -> None:
        self._flush = flush
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Waiter[T]] = []
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closing = False
        self.batches = 0  # flushes done: with ``records``, the mean batch size (tests, benchmarks)
        self.records = 0

    def submit_sync(self, item: T) -> None:
        """Return once ``item`` is flushed; raise what the flush of its batch raised."""
        waiter = _Waiter(item)
        self._enqueue(waiter)
        waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error

    def _enqueue(self, waiter: _Waiter[T]) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError("the audit writer is closing")
            if self._thread is None or self._pid != os.getpid():
                # First use, or a forked child: threads do not survive fork, the queue is the parent's.
                self._queue = []
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append(waiter)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing, and nothing left to write
                batch, self._queue = self._queue, []
            error: BaseException | None = None
            try:
                self._flush([w.item for w in batch])
            except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets it, the writer lives on
                error = exc
            self.batches += 1
            self.records += len(batch)
            self._answer(batch, error)

    def _answer(self, batch: list[_Waiter[T]], error: BaseException | None) -> None:
        for waiter in batch:
            waiter.error = error
            waiter.event.set()

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the writer; a later submit starts a new one."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            self._closing = False
            self._thread = None
