"""Where audit events go: the chained log file (shared by all worker processes) and oslo.messaging.

The file sink appends under an exclusive ``flock`` on the head file, which every process of every node
sharing the file takes in turn: read where the chain ends, append a batch of sealed lines in one write,
record the new end, release the lock. With ``fsync`` the ``fdatasync`` comes after the lock is released,
so one process's wait for the disk never holds up another's append; and an ``fdatasync`` makes durable
everything appended before it, whoever appended it, so a thread whose records another process's sync
already covered skips its own. One chain for the whole host, so ``donjon audit verify`` checks a single
file and a record removed by anyone breaks it.

The head file has two slots of ``HEAD_SIZE`` bytes, each a head state under its own HMAC:
* slot 0, the **durable head**, is what ``verify`` checks the log against: written only after an
  ``fdatasync`` that covered it, so it is never ahead of the log on disk, even after a power loss;
* slot 1, the **tail**, is where the chain ends in the page cache: the next writer continues from it. After
  a power loss it may name records that never reached the disk (nobody was answered for them): a tail
  longer than the log is ignored, and the chain continues from the durable head and the log itself.

With ``fsync`` the appending and the syncing are batched apart:
* on an event loop (the request path), ``loop_sync.LoopSync``: one ``fdatasync`` at a time per loop, which the
  kernel runs (``kernel_fdatasync``: Linux AIO, answered on an eventfd the loop watches) or else a thread,
  while the loop goes on serving. The records that came while none ran (one loop iteration's; a few
  iterations' on a busy loop) are sealed and appended in one write right on the loop (microseconds of CPU: a
  thread would cost more in hand-offs and GIL switches than the work), and their fdatasync starts; the records
  that come while one runs wait for it to return, then go out together in the next append and fdatasync. The
  loop then advances the durable head and answers the batch's callers;
* a thread without a loop (the CLI, tests) appends its own record and waits in ``commit.GroupCommit``, whose
  own thread does the fdatasync and the head for the threads' appends.
Nobody is answered before an ``fdatasync`` that began after their append.
Without ``fsync`` a record is appended by its caller and that is all: both head slots are written at once.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import queue
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from donjon.audit.chain import EMPTY, HEAD_SIZE, BadRecord, Head, head_path, line_hash, open_record, seal
from donjon.audit.commit import GroupCommit
from donjon.audit.loop_sync import DiskWaiter, LoopSync

log = logging.getLogger("donjon.audit")
TAIL_OFFSET = HEAD_SIZE  # the head file's second slot


class FileSink:
    """The append-only JSON-lines log. ``append`` raises OSError when the record could not be written."""

    def __init__(self, path: Path, key: bytes, *, fsync: bool, kernel_fdatasync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        # Whether event loops ask the kernel for their fdatasyncs (Linux AIO, where it has it) or the sync thread.
        self.kernel_fdatasync = kernel_fdatasync
        self._key = key
        self._head_path = head_path(path)
        self._lock = threading.Lock()  # flock is per open file: threads of one process queue here first
        self._fds: tuple[int, int] | None = None
        self._pid = 0
        # Head slots whose MAC this process checked or wrote, raw -> decoded: the same bytes on disk again (the
        # usual case, whichever process wrote them) need no second HMAC. A few entries: slots only move forward.
        self._heads_seen: dict[bytes, Head] = {}
        # The sync thread's own open files: its flock on the head excludes this process's appends too, and an
        # append that reopens the files cannot close them under it.
        self._sync_fds: tuple[int, int] | None = None
        self._sync_pid = 0
        # Bumped each time the appends (re)open the files: the sync thread then reopens its own too, so that it
        # never syncs a file the log's path no longer names (replaced after an error) while answering callers.
        self._generation = 0
        self._sync_generation = 0
        # Threads without a loop (the CLI, tests) wait in a group commit whose thread does the whole sync; an
        # event loop's appends are synced by their LoopSync, whose thread only waits for the disk.
        self.syncer: GroupCommit[tuple[Head, bytes]] = GroupCommit(self._sync)
        self._disk = DiskWaiter()
        self._loop_syncs: dict[asyncio.AbstractEventLoop, LoopSync] = {}
        self._retired_batches = self._retired_kernel_batches = 0  # those of the loops that are gone

    def open(self) -> tuple[int, int]:
        if self._fds is not None and self._pid == os.getpid():
            return self._fds
        self._fds, self._pid = self._open_files(), os.getpid()
        self._generation += 1
        return self._fds

    def _open_files(self) -> tuple[int, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_CLOEXEC | os.O_CREAT
        log_fd = os.open(self.path, flags | os.O_RDWR | os.O_APPEND, 0o600)
        try:
            head_fd = os.open(self._head_path, flags | os.O_RDWR, 0o600)
        except OSError:
            os.close(log_fd)
            raise
        return log_fd, head_fd

    def append(self, event: dict[str, Any]) -> None:
        """Write ``event``; on return it is in the log (and on disk, with ``fsync``)."""
        self.write_batch([event])

    async def append_async(self, event: dict[str, Any]) -> None:
        """``append`` for the event loop: with ``fsync`` the caller waits for its batch's fdatasync (``LoopSync``)."""
        if not self.fsync:
            # A page-cache append under a lock held for microseconds: cheaper here than a thread hop.
            self._append([event])
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._loop_sync(loop).add(event, future)
        await future

    def _loop_sync(self, loop: asyncio.AbstractEventLoop) -> LoopSync:
        syncs = self._loop_syncs.get(loop)
        if syncs is None:
            for old_loop, old in list(self._loop_syncs.items()):
                if old_loop.is_closed() and old.idle:  # a finished asyncio.run (tests): let its files go
                    old.close()
                    self._retired_batches += old.batches
                    self._retired_kernel_batches += old.kernel_batches
                    del self._loop_syncs[old_loop]
            syncs = self._loop_syncs[loop] = LoopSync(self, self._disk, loop, kernel=self.kernel_fdatasync)
        return syncs

    @property
    def loop_batches(self) -> int:
        """Batches of records appended on event loops, each in one write and with its fdatasync (tests,
        benchmarks)."""
        return self._retired_batches + sum(sync.batches for sync in list(self._loop_syncs.values()))

    @property
    def kernel_batches(self) -> int:
        """Those of ``loop_batches`` whose fdatasync the kernel ran (``kernel_fdatasync``; tests, benchmarks)."""
        return self._retired_kernel_batches + sum(sync.kernel_batches for sync in list(self._loop_syncs.values()))

    @property
    def sync_batches(self) -> int:
        """fdatasyncs done or spared (another process's covered them), threads' and loops' (tests, benchmarks)."""
        return self.syncer.batches + self.loop_batches

    # What a LoopSync needs of its sink (loop_sync.SyncTarget).

    def append_batch(self, events: Sequence[dict[str, Any]]) -> tuple[Head, bytes]:
        return self._append(events)

    def open_sync_files(self) -> tuple[int, int]:
        return self._open_files()

    def sync_generation(self) -> int:
        return self._generation

    def write_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """Append ``events``; with ``fsync``, return once they are durable (for a thread without a loop)."""
        appended = self._append(events)
        if self.fsync:
            self.syncer.submit_sync(appended)

    def _append(self, events: Sequence[dict[str, Any]]) -> tuple[Head, bytes]:
        """Chain and append ``events`` in order under one flock and one write: the new end of the chain, and
        its sealed bytes (the tail slot's)."""
        with self._lock:
            log_fd, head_fd = self.open()
            fcntl.flock(head_fd, fcntl.LOCK_EX)
            try:
                head = self._current(log_fd, head_fd)
                count, last, lines = head.count, head.hash, []
                for event in events:
                    count += 1
                    line = seal(self._key, count, last, event)
                    last = line_hash(line)
                    lines.append(line)
                data = b"".join(lines)
                # O_APPEND: one write is one append at the end, whatever another process did before the lock.
                try:
                    written = os.write(log_fd, data)
                except OSError:
                    _cut(log_fd, head.size)
                    raise
                if written != len(data):  # a full disk or a file size limit, part way through the batch
                    _cut(log_fd, head.size)
                    raise OSError(errno.EFBIG, f"short write to the audit log ({written} of {len(data)} bytes)")
                new = Head(count=count, hash=last, size=head.size + len(data))
                raw = new.encode(self._key)
                if self.fsync:
                    os.pwrite(head_fd, raw, TAIL_OFFSET)  # the durable head follows the fdatasync
                else:
                    os.pwrite(head_fd, raw + raw, 0)  # the page cache is all there is: both slots agree
                self._remember(raw, new)
                return new, raw
            except OSError:
                self._close()  # reopen next time: the file may have been replaced or repaired
                raise
            finally:
                if self._fds is not None:
                    fcntl.flock(head_fd, fcntl.LOCK_UN)

    def _sync(self, appended: Sequence[tuple[Head, bytes]]) -> None:
        """In the sync thread: make the log durable up to the furthest of ``appended`` (one fdatasync)."""
        new, raw = max(appended, key=lambda item: item[0].count)  # counts only grow along the chain
        generation = self._generation
        if self._sync_fds is None or self._sync_pid != os.getpid() or self._sync_generation != generation:
            # First use, a forked child, or files the appends reopened since: open what the path names now.
            self._close_sync()
            self._sync_fds, self._sync_pid, self._sync_generation = self._open_files(), os.getpid(), generation
        log_fd, head_fd = self._sync_fds
        try:
            self._make_durable(log_fd, head_fd, new, raw)
        except OSError:
            self._close_sync()
            raise

    def _close_sync(self) -> None:
        if self._sync_fds is not None and self._sync_pid == os.getpid():
            for fd in self._sync_fds:
                os.close(fd)
        self._sync_fds = None

    def _make_durable(self, log_fd: int, head_fd: int, new: Head, raw: bytes) -> None:
        """Return once the log is on disk up to ``new`` (sealed as ``raw``); then advance the durable head to
        it, never back."""
        if self.durable_covers(head_fd, new):
            return  # another process's fdatasync, which began after our append, covered it
        os.fdatasync(log_fd)
        self.advance_durable_head(head_fd, new, raw)

    def advance_durable_head(self, head_fd: int, new: Head, raw: bytes) -> None:
        """After an fdatasync that began once ``new`` was appended: make it the durable head, unless a later
        one already is."""
        fcntl.flock(head_fd, fcntl.LOCK_EX)
        try:
            if not self.durable_covers(head_fd, new):
                os.pwrite(head_fd, raw, 0)  # the tail's bytes, already sealed: no second HMAC
        finally:
            fcntl.flock(head_fd, fcntl.LOCK_UN)

    def durable_covers(self, head_fd: int, new: Head) -> bool:
        """Whether the durable head already counts ``new``."""
        # Counts only grow along the chain (every writer continues from the tail under the lock), so a
        # durable head at or past our count was written after an fdatasync that began after our append.
        # Sizes are compared too: a log cut by someone makes sizes shrink while counts go on.
        durable = self._decode(os.pread(head_fd, HEAD_SIZE, 0))
        return durable is not None and durable.count >= new.count and durable.size >= new.size

    def _decode(self, raw: bytes) -> Head | None:
        """A slot's head state, or None if it is empty or not sealed under our key."""
        seen = self._heads_seen.get(raw)
        if seen is not None:
            return seen
        if not raw.strip():
            return None
        try:
            head = Head.decode(self._key, raw)
        except BadRecord:
            return None
        self._remember(raw, head)
        return head

    def _remember(self, raw: bytes, head: Head) -> None:
        # Called from the appending thread and the sync thread: replacing the dict whole is safe under the GIL.
        if len(self._heads_seen) >= 8:
            self._heads_seen = {}
        self._heads_seen[raw] = head

    def _current(self, log_fd: int, head_fd: int) -> Head:
        """Where the chain ends, reconciled with the log's actual size (a crash or tampering in between)."""
        size = os.fstat(log_fd).st_size
        raw = os.pread(head_fd, 2 * HEAD_SIZE, 0)
        tail = self._decode(raw[TAIL_OFFSET:])
        if tail is not None and tail.size == size:
            return tail  # the usual case: nothing happened since the last append
        if tail is not None and tail.size < size:
            return self._catch_up(log_fd, tail, size)  # a writer died between its append and the tail
        # No tail (a log of an earlier version), or one longer than the log: records that a power loss took
        # before any fdatasync covered them (nobody was answered for them), or a cut. The durable head decides.
        durable_raw = raw[:HEAD_SIZE]
        head: Head = EMPTY
        if durable_raw.strip():
            try:
                head = Head.decode(self._key, durable_raw)
            except BadRecord as exc:
                log.error("audit: head state %s is invalid (%s); recovering from the log", self._head_path, exc)
        elif size:
            log.error("audit: head state %s is missing; recovering from the log", self._head_path)
        if size == head.size:
            return head
        if size < head.size:
            # Someone cut the log. Keep chaining from the head: the gap stays visible to `audit verify`.
            log.error("audit: %s is shorter than its head state says: records were removed", self.path)
            return Head(head.count, head.hash, size)
        return self._catch_up(log_fd, head, size)

    def _catch_up(self, log_fd: int, head: Head, size: int) -> Head:
        # Records appended after the head was last written (a crash in between): take the last sealed one.
        tail = os.pread(log_fd, size - head.size, head.size)
        count, last = head.count, head.hash
        for line in tail.split(b"\n")[:-1]:
            try:
                record = open_record(self._key, line)
            except BadRecord:
                continue
            count, last = int(record["seq"]), line_hash(line)
        if not tail.endswith(b"\n"):
            # A torn last line: the next record starts on its own line; verify will name the torn one.
            os.write(log_fd, b"\n")
            size += 1
        return Head(count, last, size)

    def _close(self) -> None:
        if self._fds is not None and self._pid == os.getpid():
            for fd in self._fds:
                os.close(fd)
        self._fds = None

    def close(self) -> None:
        """Sync what is queued, stop the sync threads, close the files (the next append reopens them)."""
        self.syncer.close()
        for sync in list(self._loop_syncs.values()):
            sync.close()  # an fdatasync in flight closes its files once its loop hears back
        self._disk.close()
        self._close_sync()  # the sync thread has stopped: its files are free
        with self._lock:
            self._close()


def _cut(log_fd: int, size: int) -> None:
    """Take a failed batch's partial bytes back off the log (we hold the lock: they are the last ones).

    Its callers are told it failed, so none of it may stand as a torn line that ``verify`` would flag
    forever. If even this fails, the next writer starts on a new line and ``verify`` names the torn one.
    """
    try:
        os.ftruncate(log_fd, size)
    except OSError:
        log.error("audit: could not remove a partly written batch from the log")


class NotificationSink:
    """CADF events as oslo.messaging notifications (``audit.http.request`` / ``audit.http.response``).

    Best effort, from a background thread: oslo.messaging's Notifier logs and swallows publishing errors,
    so it cannot tell a caller whether the broker accepted an event; it never counts towards fail-closed.
    """

    def __init__(self, transport_url: str, topic: str, *, max_queue: int = 10_000) -> None:
        import oslo_messaging  # the audit extra; imported only when notifications are configured
        from oslo_config import cfg

        conf = cfg.ConfigOpts()
        conf([], project="donjon", default_config_files=[], default_config_dirs=[])
        self._transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self._notifier = oslo_messaging.Notifier(
            self._transport,
            publisher_id=f"donjon.{socket.gethostname()}",
            driver="messagingv2",
            topics=[topic],
            retry=3,
        )
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(max_queue)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="donjon-audit-notify", daemon=True)
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        kind = "audit.http.request" if event["outcome"] == "pending" else "audit.http.response"
        try:
            self._queue.put_nowait((kind, event))
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit: notification queue full, %d events dropped so far", self.dropped)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            kind, event = item
            try:
                self._notifier.info({}, kind, event)
            except Exception as exc:  # noqa: BLE001 - a broken broker must not end the thread
                log.error("audit: notification not sent: %s", type(exc).__name__)

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._transport.cleanup()
