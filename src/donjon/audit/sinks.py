"""Where audit events go: the chained log file (shared by all worker processes) and oslo.messaging.

The file sink appends under an exclusive ``flock`` on the head file, which every process of every node
sharing the file takes in turn: read the head state (count, last hash, size), append a batch of sealed
lines in one write, optionally ``fdatasync`` them, rewrite the head in place. One chain for the whole host,
so ``donjon audit verify`` checks a single file and a record removed by anyone breaks it.

With ``fsync`` the batch is a group commit (``commit.GroupCommit``): one writer thread per process takes
every record that queued while its previous batch was being written, so the lock, the ``fdatasync`` and the
head rewrite are paid once per batch instead of once per record. Without ``fsync`` a record is written
alone by its caller: the lock is held for microseconds and there is nothing to share.
"""

from __future__ import annotations

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

log = logging.getLogger("donjon.audit")


class FileSink:
    """The append-only JSON-lines log. ``append`` raises OSError when the record could not be written."""

    def __init__(self, path: Path, key: bytes, *, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self._key = key
        self._head_path = head_path(path)
        self._lock = threading.Lock()  # flock is per open file: threads of one process queue here first
        self._fds: tuple[int, int] | None = None
        self._pid = 0
        # The head last written by this process, raw and decoded: unchanged on disk means no HMAC to check.
        self._known_head: tuple[bytes, Head] | None = None
        self.writer: GroupCommit[dict[str, Any]] = GroupCommit(self.write_batch)

    def open(self) -> tuple[int, int]:
        if self._fds is not None and self._pid == os.getpid():
            return self._fds
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_CLOEXEC | os.O_CREAT
        log_fd = os.open(self.path, flags | os.O_RDWR | os.O_APPEND, 0o600)
        try:
            head_fd = os.open(self._head_path, flags | os.O_RDWR, 0o600)
        except OSError:
            os.close(log_fd)
            raise
        self._fds, self._pid = (log_fd, head_fd), os.getpid()
        self._known_head = None
        return self._fds

    def append(self, event: dict[str, Any]) -> None:
        """Write ``event``; on return it is in the log (and on disk, with ``fsync``)."""
        if self.fsync:
            self.writer.submit_sync(event)
        else:
            self.write_batch([event])

    async def append_async(self, event: dict[str, Any]) -> None:
        """``append`` for the event loop: with ``fsync`` the caller waits for its batch without a thread."""
        if self.fsync:
            await self.writer.submit(event)
        else:
            # A page-cache append under a lock held for microseconds: cheaper here than a thread hop.
            self.write_batch([event])

    def write_batch(self, events: Sequence[dict[str, Any]]) -> None:
        """Chain and append ``events`` in order under one flock, one write, one fdatasync, one head update."""
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
                if self.fsync:
                    os.fdatasync(log_fd)
                # Written after the records are durable: the head is never ahead of the log on disk.
                new = Head(count=count, hash=last, size=head.size + len(data))
                raw = new.encode(self._key)
                os.pwrite(head_fd, raw, 0)
                self._known_head = (raw, new)
            except OSError:
                self._close()  # reopen next time: the file may have been replaced or repaired
                raise
            finally:
                if self._fds is not None:
                    fcntl.flock(head_fd, fcntl.LOCK_UN)

    def _current(self, log_fd: int, head_fd: int) -> Head:
        """The head state, reconciled with the log's actual size (a crash or tampering in between)."""
        size = os.fstat(log_fd).st_size
        raw = os.pread(head_fd, HEAD_SIZE, 0)
        head: Head = EMPTY
        if self._known_head is not None and raw == self._known_head[0]:
            head = self._known_head[1]  # the bytes this process sealed: their MAC was right when written
        elif raw.strip():
            try:
                head = Head.decode(self._key, raw)
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
        self._known_head = None

    def close(self) -> None:
        """Write what is queued, stop the writer, close the files (the next append reopens them)."""
        self.writer.close()
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
