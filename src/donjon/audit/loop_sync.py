"""The audit log's fdatasyncs for an event loop: the loop does the bookkeeping, a thread only waits for the disk.

A sync thread that also checked the durable head, took the head's ``flock``, wrote the head and answered the
callers had to win the GIL back from the busy loop after every one of those system calls: about seven
hand-offs per batch, each a pair of futex calls and context switches, which with Connection: close (a batch
or so per request) cost more CPU than the records themselves. Here the thread's whole job is
``os.fdatasync(fd)`` and one ``call_soon_threadsafe``; everything else runs on the loop, in the callback:

* ``add`` queues one append (the chain's end after it, and the futures of its callers); if no fdatasync is in
  flight for this loop, one starts at once, else the append waits for the next one, which starts as soon as
  the running one is done and covers everything queued meanwhile (group commit, as ``commit.GroupCommit``);
* before asking the thread, the loop reads the durable head: when another process's fdatasync, begun after
  our append, already covered it, the callers are answered without one;
* once the disk answered, the loop advances the durable head (under the head's ``flock``, never back) and
  settles the batch's futures: success, or the fdatasync's error, which fail-closed turns into 503s.

The files this loop syncs are its own open file descriptions (so an append that reopens the sink's files
after an error cannot close them under a running fdatasync): opened on first use, reopened when the sink's
files were (``generation``), and closed only when no fdatasync is in flight.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from donjon.audit.chain import Head
from donjon.io_threads import without_wakeup_preemption
from donjon.loop_futures import settle

Futures = list[asyncio.Future[None]]
Appended = tuple[Head, bytes]  # the chain's end after an append, and its sealed head state


class SyncTarget(Protocol):
    """What the loop needs of the sink (``sinks.FileSink``)."""

    def open_sync_files(self) -> tuple[int, int]: ...

    def sync_generation(self) -> int: ...

    def durable_covers(self, head_fd: int, new: Head) -> bool: ...

    def advance_durable_head(self, head_fd: int, new: Head, raw: bytes) -> None: ...


class DiskWaiter:
    """One thread that runs ``os.fdatasync`` for the loops of a process and tells each loop when it returned."""

    def __init__(self, name: str = "donjon-audit-fdatasync") -> None:
        self._name = name
        self._requests: queue.SimpleQueue[tuple[int, asyncio.AbstractEventLoop, Callable[..., None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def fdatasync(self, fd: int, loop: asyncio.AbstractEventLoop, done: Callable[[OSError | None], None]) -> None:
        """Start ``fdatasync(fd)``; ``done(error)`` is then called on ``loop``."""
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._requests.put((fd, loop, done))

    def _run(self) -> None:
        without_wakeup_preemption()
        while (request := self._requests.get()) is not None:
            fd, loop, done = request
            error: OSError | None = None
            try:
                os.fdatasync(fd)
            except OSError as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(done, error)
            except RuntimeError:
                pass  # that loop is closed: nobody waits for this answer any more

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread once the fdatasyncs asked for are done (their answers are posted to their loops)."""
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
            self._thread = None
        if thread is not None:
            self._requests.put(None)
            thread.join(timeout)


class LoopSync:
    """The fdatasyncs of one event loop's appends to one sink: at most one in flight, the rest queued."""

    def __init__(self, target: SyncTarget, disk: DiskWaiter, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._disk = disk
        self._loop = loop
        self._waiting: list[tuple[Appended, Futures]] = []
        # The batch whose fdatasync runs, and the furthest of its appends (what the durable head moves to).
        self._in_flight: tuple[list[tuple[Appended, Futures]], Appended] | None = None
        self._fds: tuple[int, int] | None = None
        self._generation = -1
        self._closed = False
        self.batches = 0  # fdatasyncs asked for, or spared by another process's (tests, benchmarks)

    def add(self, appended: Appended, futures: Futures) -> None:
        """On the loop: ``futures`` are settled once the log is durable up to ``appended``."""
        self._closed = False
        self._waiting.append((appended, futures))
        if self._in_flight is None:
            self._start()

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        furthest = max((appended for appended, _ in batch), key=lambda item: item[0].count)
        try:
            log_fd, head_fd = self._files()
            covered = self._target.durable_covers(head_fd, furthest[0])
        except OSError as exc:
            self._close_files()
            self._answer(batch, exc)
            return
        self.batches += 1
        if covered:  # another process's fdatasync, begun after our append, made it durable
            self._answer(batch, None)
            return
        self._in_flight = batch, furthest
        self._disk.fdatasync(log_fd, self._loop, self._synced)

    def _synced(self, error: OSError | None) -> None:
        assert self._in_flight is not None  # called once per fdatasync that _start asked for
        (batch, (new, raw)), self._in_flight = self._in_flight, None
        if error is None and self._fds is not None:
            try:
                self._target.advance_durable_head(self._fds[1], new, raw)
            except OSError as exc:
                error = exc
        if error is not None:
            self._close_files()  # reopened for the next batch: the path may name a repaired file by then
        self._answer(batch, error)
        if self._waiting:
            self._start()
        elif self._closed:
            self._close_files()

    def _files(self) -> tuple[int, int]:
        generation = self._target.sync_generation()
        if self._fds is None or self._generation != generation:
            # First use, or files the appends reopened since: open what the path names now.
            self._close_files()
            self._fds, self._generation = self._target.open_sync_files(), generation
        return self._fds

    def _close_files(self) -> None:
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    @staticmethod
    def _answer(batch: list[tuple[Appended, Futures]], error: OSError | None) -> None:
        settle([future for _, futures in batch for future in futures], error)

    @property
    def idle(self) -> bool:
        return self._in_flight is None

    def close(self) -> None:
        """Close the files now unless an fdatasync on them is in flight (then once it and the appends queued
        behind it are synced); a later ``add`` reopens them."""
        self._closed = True
        if self._in_flight is None:
            self._close_files()
