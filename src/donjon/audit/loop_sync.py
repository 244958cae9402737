"""The audit log's appends and fdatasyncs for an event loop: the loop does the bookkeeping, the kernel (or a
thread) only waits for the disk.

Where Linux AIO is there, the loop submits each fdatasync to the kernel and reads its end from an eventfd
(``kernel_fdatasync``): no thread, no hand-off. Elsewhere, or if the kernel refuses, a sync thread runs it.
A sync thread that also checked the durable head, took the head's ``flock``, wrote the head and answered the
callers had to win the GIL back from the busy loop after every one of those system calls: about seven
hand-offs per batch, each a pair of futex calls and context switches, which with Connection: close (a batch
or so per request) cost more CPU than the records themselves. Here the thread's whole job is
``os.fdatasync(fd)`` and one ``call_soon_threadsafe``; everything else runs on the loop, in callbacks:

* ``add`` queues one record and the future of its caller. When no fdatasync is in flight for this loop, the
  records of the current loop iteration are appended at its end, in one write, and their fdatasync starts at
  once (on a busy loop, a few iterations later: below). When one is in flight, the records wait unwritten: a
  record appended now could not be answered before the next fdatasync anyway, so they are all appended, in one
  write, when the running one returns, and the next fdatasync covers them (group commit, as
  ``commit.GroupCommit``). One append per fdatasync: appending each loop iteration's records as they came cost
  ~1 append per record under load (five system calls and the head's ``flock`` each) for ~4 records per
  fdatasync;
* a busy loop (its last batch held more than one record: other requests are being served) lets
  ``GATHER_ITERATIONS`` more iterations pass before it appends and starts the fdatasync, so that the records
  of the requests those iterations bring to their end share it (a commit delay, as PostgreSQL's
  ``commit_delay`` with ``commit_siblings``). Under load an fdatasync costs the machine far more than its
  own CPU (its kernel work runs on the loop's core, ~8 context switches each, and the Python around it runs
  slower after it): nearly twice the records per fdatasync made reads 17-18 % faster, stores 9-15 %, and
  lowered their median latency (bench/README.md). A quiet loop, one record at a time, starts at once;
* once the disk answered, the loop advances the durable head (under the head's ``flock``, never back) and
  settles the batch's futures: success, or the fdatasync's error, which fail-closed turns into 503s; an
  append that fails is told to its batch's callers at once.

The files this loop syncs are its own open file descriptions (so an append that reopens the sink's files
after an error cannot close them under a running fdatasync): opened on first use, reopened when the sink's
files were (``generation``), and closed only when no fdatasync is in flight.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from donjon.audit.chain import Head
from donjon.audit.kernel_fdatasync import KernelFdatasync
from donjon.io_threads import without_wakeup_preemption
from donjon.loop_futures import settle
from donjon.observability import metrics

# Loop iterations a busy loop lets pass before starting an fdatasync (see above). Each is one turn of the
# loop's ready callbacks and I/O; under load that is what moves other requests to their outcome record. The
# gain levelled off from 8 to 20 in the benchmarks.
GATHER_ITERATIONS = 8

Futures = list[asyncio.Future[None]]
Appended = tuple[Head, bytes]  # the chain's end after an append, and its sealed head state


class SyncTarget(Protocol):
    """What the loop needs of the sink (``sinks.FileSink``)."""

    def append_batch(self, events: Sequence[dict[str, Any]]) -> Appended: ...

    def open_sync_files(self) -> tuple[int, int]: ...

    def sync_generation(self) -> int: ...

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
    """The records of one event loop for one sink: at most one fdatasync in flight, the records behind it queued."""

    def __init__(
        self, target: SyncTarget, disk: DiskWaiter, loop: asyncio.AbstractEventLoop, *, kernel: bool = True
    ) -> None:
        self._target = target
        self._disk = disk
        self._loop = loop
        # The kernel's asynchronous fdatasync where it has one (kernel_fdatasync), else the sync thread's.
        self._use_kernel = kernel
        self._kernel: KernelFdatasync | None = None
        self._queued: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flush_due = False
        self._last_batch = 0  # records in the last batch appended: more than one, and the loop is busy
        # The callers whose records the running fdatasync covers, and the chain's end after them (what the
        # durable head moves to).
        self._in_flight: tuple[Futures, Appended] | None = None
        self._fds: tuple[int, int] | None = None
        self._generation = -1
        self._closed = False
        self.batches = 0  # batches appended, each with its fdatasync (tests, benchmarks)
        self.kernel_batches = 0  # those whose fdatasync the kernel ran; the others', the sync thread

    def add(self, event: dict[str, Any], future: asyncio.Future[None]) -> None:
        """On the loop: ``future`` is settled once ``event`` is in the log and the log is durable up to it."""
        self._closed = False
        self._queued.append((event, future))
        if self._in_flight is None:
            self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            # After the callbacks already due, so that their records join this batch; on a busy loop, after
            # GATHER_ITERATIONS more turns of the loop too.
            busy = self._last_batch > 1 or len(self._queued) > 1
            self._loop.call_soon(self._flush_after, GATHER_ITERATIONS if busy else 0)

    def _flush_after(self, turns: int) -> None:
        if turns > 0:
            self._loop.call_soon(self._flush_after, turns - 1)
        else:
            self._flush()

    def _flush(self) -> None:
        """Append the queued records in one write, and start their fdatasync."""
        self._flush_due = False
        batch, self._queued = self._queued, []
        if not batch:
            return
        futures = [future for _, future in batch]
        self._last_batch = len(batch)
        try:
            appended = self._target.append_batch([event for event, _ in batch])
            log_fd, _ = self._files()  # after the append, which may have reopened the sink's files
        except Exception as exc:  # noqa: BLE001 - the batch's callers are told, the next batch tries again
            self._close_files()
            settle(futures, exc)
            return
        self.batches += 1
        metrics.AUDIT_FDATASYNC_RECORDS.observe(len(batch))
        self._in_flight = futures, appended
        self._start_fdatasync(log_fd)

    def _start_fdatasync(self, log_fd: int) -> None:
        if self._kernel is None and self._use_kernel:
            self._kernel = KernelFdatasync.for_loop(self._loop)
            self._use_kernel = self._kernel is not None
        if self._kernel is not None:
            try:
                self._kernel.fdatasync(log_fd, self._synced)
                self.kernel_batches += 1
                return
            except OSError:  # refused before it started (a file system without it, say): the thread from now on
                self._close_kernel()
                self._use_kernel = False
        self._disk.fdatasync(log_fd, self._loop, self._synced)

    def _synced(self, error: OSError | None) -> None:
        assert self._in_flight is not None  # called once per fdatasync that _flush asked for
        (futures, (new, raw)), self._in_flight = self._in_flight, None
        if error is None and self._fds is not None:
            try:
                self._target.advance_durable_head(self._fds[1], new, raw)
            except OSError as exc:
                error = exc
        if error is not None:
            self._close_files()  # reopened for the next batch: the path may name a repaired file by then
        settle(futures, error)
        if self._queued:
            self._flush_soon()
        elif self._closed:
            self._close_files()
            self._close_kernel()

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

    def _close_kernel(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None

    @property
    def idle(self) -> bool:
        return self._in_flight is None and not self._queued

    def close(self) -> None:
        """Close the files now unless an fdatasync on them is in flight or records wait for one (then once those
        are synced); a later ``add`` reopens them."""
        self._closed = True
        if self._in_flight is None and not self._queued:
            self._close_files()
            self._close_kernel()
