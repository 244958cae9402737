"""Group commit: the records that queue up while one batch is being written go out together in the next.

A sink's ``flush(items)`` is slow for a reason that does not grow with the batch (an ``fdatasync``, a lock
shared with other processes), so one writer thread per process takes everything queued, flushes it in one
go and then answers every caller of that batch: with success, or with the flush's exception (fail-closed
turns that into a 503). Nothing waits on purpose: a lone record is flushed as soon as the writer wakes, and
a batch is simply whatever arrived while the previous flush ran, so latency stays that of one flush at low
concurrency and throughput grows with concurrency up to the batch the flush can take.

Async callers (the request path) await an asyncio future that the writer resolves through
``call_soon_threadsafe`` (one loop wake-up per batch, no worker-thread hop per record); synchronous callers
(the CLI, tests) block on a ``threading.Event``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Waiter(Generic[T]):
    """One caller's record and where to tell it the outcome (exactly one of ``loop`` or ``event`` set)."""

    item: T
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[None] | None = None
    event: threading.Event | None = None
    error: BaseException | None = field(default=None)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    # Runs on the futures' event loop. A caller may have gone away (its task cancelled): skip it.
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


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

    async def submit(self, item: T) -> None:
        """Return once ``item`` is flushed; raise what the flush of its batch raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Waiter(item, loop=loop, future=future))
        await future

    def submit_sync(self, item: T) -> None:
        """``submit`` for a thread that is not running an event loop."""
        waiter = _Waiter(item, event=threading.Event())
        self._enqueue(waiter)
        assert waiter.event is not None
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
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for waiter in batch:
            if waiter.event is not None:
                waiter.error = error
                waiter.event.set()
            elif waiter.loop is not None and waiter.future is not None:
                by_loop.setdefault(waiter.loop, []).append(waiter.future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:
                pass  # that loop is closed: nobody is waiting any more

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
