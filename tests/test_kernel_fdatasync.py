"""The audit log's fdatasync asked of the kernel (Linux AIO) by an event loop, and the thread it falls back to."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from pathlib import Path

import pytest

from donjon.audit import kernel_fdatasync
from donjon.audit.chain import Head, head_path, load_audit_key
from donjon.audit.kernel_fdatasync import KernelFdatasync, outcome
from donjon.audit.loop_sync import DiskWaiter
from donjon.audit.sinks import FileSink
from donjon.audit.verify import verify

linux_aio = pytest.mark.skipif(sys.platform != "linux", reason="Linux AIO")


@linux_aio
def test_the_kernel_answers_on_the_loop_once_the_fdatasync_returned(tmp_path: Path) -> None:
    async def run() -> list[tuple[str, object]]:
        loop = asyncio.get_running_loop()
        kernel = KernelFdatasync.for_loop(loop)
        assert kernel is not None  # this machine's kernel has it
        fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        events: list[tuple[str, object]] = []
        try:
            for i in range(3):  # one context and one iocb, reused request after request
                os.write(fd, b"record %d\n" % i)
                answered = loop.create_future()
                kernel.fdatasync(fd, answered.set_result)
                events.append(("submitted", i))  # before any answer: the call returned without waiting
                with pytest.raises(RuntimeError):
                    kernel.fdatasync(fd, answered.set_result)  # never two at once
                events.append(("answered", await asyncio.wait_for(answered, 10)))
        finally:
            kernel.close()
            os.close(fd)
        kernel.close()  # twice is harmless
        return events

    events = asyncio.run(run())
    assert events == [("submitted", 0), ("answered", None), ("submitted", 1), ("answered", None)] + [
        ("submitted", 2),
        ("answered", None),
    ]


@linux_aio
def test_a_file_the_kernel_cannot_sync_is_refused_at_once(tmp_path: Path) -> None:
    async def run() -> None:
        kernel = KernelFdatasync.for_loop(asyncio.get_running_loop())
        assert kernel is not None
        read_end, write_end = os.pipe()  # a pipe has no fsync: io_submit says EINVAL, nothing starts
        try:
            with pytest.raises(OSError) as refused:
                kernel.fdatasync(write_end, lambda error: pytest.fail("answered a refused request"))
            assert refused.value.errno == errno.EINVAL
            log = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT, 0o600)
            answered = asyncio.get_running_loop().create_future()
            kernel.fdatasync(log, answered.set_result)  # the context is still usable
            assert await asyncio.wait_for(answered, 10) is None
            os.close(log)
        finally:
            kernel.close()
            os.close(read_end)
            os.close(write_end)

    asyncio.run(run())


def test_an_event_result_is_success_or_the_errno() -> None:
    assert outcome(0) is None
    error = outcome(-errno.EIO)
    assert isinstance(error, OSError) and error.errno == errno.EIO and error.strerror == os.strerror(errno.EIO)


def sink_appending(tmp_path: Path, count: int) -> FileSink:
    """A sink on ``tmp_path`` after ``count`` concurrent records from one loop (the sink is still open)."""
    sink = FileSink(tmp_path / "audit.log", load_audit_key(tmp_path / "audit.key", create=True), fsync=True)

    async def callers() -> None:
        await asyncio.gather(*(sink.append_async({"id": f"c-{i}"}) for i in range(count)))

    asyncio.run(callers())
    return sink


def durable_head(tmp_path: Path, sink: FileSink) -> Head:
    return Head.decode(load_audit_key(tmp_path / "audit.key", create=False), head_path(sink.path).read_bytes()[:256])


@linux_aio
def test_a_loop_syncs_through_the_kernel_and_leaves_the_thread_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DiskWaiter, "fdatasync", lambda *args: pytest.fail("the sync thread was asked"))
    sink = sink_appending(tmp_path, 30)
    assert 1 <= sink.kernel_batches == sink.loop_batches < 30
    assert durable_head(tmp_path, sink).count == 30  # the durable head followed each kernel fdatasync
    sink.close()
    assert verify(sink.path, load_audit_key(tmp_path / "audit.key", create=False)).count == 30


@pytest.mark.parametrize("refusal", ["no AIO context", "request refused"])
def test_without_the_kernel_a_loop_syncs_in_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    if refusal == "no AIO context":  # another platform, a seccomp filter, fs.aio-max-nr reached
        monkeypatch.setattr(kernel_fdatasync, "_syscall", lambda: None)
    else:  # what io_submit says for a file without fsync (the pipe above, on the real kernel)

        def refuse(self: KernelFdatasync, fd: int, done: object) -> None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        monkeypatch.setattr(KernelFdatasync, "fdatasync", refuse)
    thread_syncs: list[int] = []
    real = DiskWaiter.fdatasync

    def counted(self: DiskWaiter, *args: object) -> None:
        thread_syncs.append(1)
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(DiskWaiter, "fdatasync", counted)
    sink = sink_appending(tmp_path, 30)
    assert sink.kernel_batches == 0 and 1 <= len(thread_syncs) == sink.loop_batches
    assert durable_head(tmp_path, sink).count == 30
    sink.close()
    assert verify(sink.path, load_audit_key(tmp_path / "audit.key", create=False)).count == 30


@linux_aio
def test_closing_the_sink_releases_each_loops_kernel_context(tmp_path: Path) -> None:
    sink = sink_appending(tmp_path, 5)
    (loop_sync,) = sink._loop_syncs.values()
    kernel = loop_sync._kernel
    assert kernel is not None  # kept, with its eventfd, while the sink is open (the next batch reuses it)
    eventfd = kernel._eventfd
    assert os.readlink(f"/proc/self/fd/{eventfd}") == "anon_inode:[eventfd]"
    inode = os.fstat(eventfd).st_ino
    sink.close()
    assert loop_sync._kernel is None and kernel._context is None  # io_destroy'd
    try:
        still_open = os.fstat(eventfd).st_ino == inode
    except OSError:
        still_open = False  # closed
    assert not still_open
