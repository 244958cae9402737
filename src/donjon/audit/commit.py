"""Group commit: the requests that queue up while one flush runs go out together in the next.

A sink's ``flush(items)`` is slow for a reason that does not grow with the batch (an ``fdatasync``), so one
thread per process takes everything queued, flushes it in one go and then answers every caller of that
batch: with success, or with the flush's exception (fail-closed turns that into a 503). Nothing waits on
purpose: a lone item is flushed as soon as the thread wakes, and a batch is simply whatever arrived while
the previous flush ran, so latency stays that of one flush at low concurrency and throughput grows with
concurrency up to the batch the flush can take.

Two kinds of callers: threads (the CLI, tests) block on a ``threading.Event``; the event loop hands over an
item with the asyncio futures of everyone it stands for and goes on, and the thread resolves them through
``call_soon_threadsafe`` (one loop wake-up per batch).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from donjon.loop_futures import settle_from_thread

T = TypeVar("T")


@dataclass(eq=False)
class _Waiter(Generic[T]):
    """One item and whom to tell its outcome: a blocked thread (``event``), or futures on ``loop``."""

    item: T
    event: threading.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Serialises ``flush`` calls of one process and hands each the whole queue."""

    def __init__(self, flush: Callable[[Sequence[T]], None], name: str = "donjon-audit-sync") -> None:
        self._flush = flush
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Waiter[T]] = []
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closing = False
        self.batches = 0  # flushes done: with ``items``, the mean batch size (tests, benchmarks)
        self.items = 0

    def submit_sync(self, item: T) -> None:
        """Return once ``item`` is flushed; raise what the flush of its batch raised. For a thread that is not
        running an event loop."""
        waiter = _Waiter(item, event=threading.Event())
        self._enqueue(waiter)
        assert waiter.event is not None
        waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error

    def submit_for(self, item: T, loop: asyncio.AbstractEventLoop, futures: list[asyncio.Future[None]]) -> None:
        """Queue ``item`` and return at once: ``futures`` (on ``loop``) are settled once it is flushed."""
        self._enqueue(_Waiter(item, loop=loop, futures=futures))

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
            except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets it, the thread lives on
                error = exc
            self.batches += 1
            self.items += len(batch)
            self._answer(batch, error)

    def _answer(self, batch: list[_Waiter[T]], error: BaseException | None) -> None:
        for waiter in batch:
            if waiter.event is not None:
                waiter.error = error
                waiter.event.set()
        settle_from_thread(((w.loop, f) for w in batch if w.loop is not None for f in w.futures), error)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the thread; a later submit starts a new one."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            self._closing = False
            self._thread = None
