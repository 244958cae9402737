"""An event loop's audit fdatasync asked of the kernel (Linux AIO), its end read by the loop: no thread at all.

With a sync thread, each fdatasync costs the worker a hand-off there and back: the loop wakes the thread
(a futex), the thread wins the GIL back from the busy loop to post the answer (more futex calls and
context switches), and the loop is woken through its self-pipe. Here the loop submits the fdatasync with
``io_submit(IOCB_CMD_FDSYNC)`` (Linux 4.18 and later run it in a kernel worker, the same ``vfs_fsync`` an
``fdatasync`` call runs), the kernel signals an eventfd when it returned, and the loop's reader on that
eventfd collects the result with ``io_getevents``. Measured with keep-alive payload reads (2 workers on 2
cores, alternating runs, bench/README.md): +16 to +21 % reads at 6 to 9 % less CPU per read.

The system calls are made through ctypes (no maintained binding is packaged): ``struct iocb`` and
``struct io_event`` are fixed by the kernel ABI, laid out here for little-endian 64-bit Linux (x86_64 and
aarch64, whose syscall numbers are listed). Anywhere else, or where the kernel refuses (a seccomp filter, an
exhausted ``fs.aio-max-nr``), ``for_loop`` gives None and the loop's fdatasyncs go to the sync thread, as
they do for one that ``io_submit`` refuses (``fdatasync`` raises, so the caller falls back at once).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import sys
from collections.abc import Callable

Done = Callable[[OSError | None], None]

# (io_setup, io_destroy, io_submit, io_getevents), from each architecture's unistd.h.
_SYSCALLS = {"x86_64": (206, 207, 209, 208), "aarch64": (0, 1, 2, 4)}
_IOCB_CMD_FDSYNC = 3
_IOCB_FLAG_RESFD = 1  # signal aio_resfd (an eventfd) when the request completes


class _Iocb(ctypes.Structure):
    """``struct iocb`` (linux/aio_abi.h), little-endian."""

    _fields_ = [
        ("aio_data", ctypes.c_uint64),
        ("aio_key", ctypes.c_uint32),
        ("aio_rw_flags", ctypes.c_int32),
        ("aio_lio_opcode", ctypes.c_uint16),
        ("aio_reqprio", ctypes.c_int16),
        ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64),
        ("aio_nbytes", ctypes.c_uint64),
        ("aio_offset", ctypes.c_int64),
        ("aio_reserved2", ctypes.c_uint64),
        ("aio_flags", ctypes.c_uint32),
        ("aio_resfd", ctypes.c_uint32),
    ]


class _IoEvent(ctypes.Structure):
    """``struct io_event``: ``res`` is the fdatasync's return value, ``-errno`` on failure."""

    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _syscall() -> tuple[Callable[..., int], tuple[int, int, int, int]] | None:
    """libc's ``syscall`` and this machine's AIO syscall numbers, or None where this module has no layout."""
    numbers = _SYSCALLS.get(platform.machine())
    if sys.platform != "linux" or numbers is None or sys.byteorder != "little" or ctypes.sizeof(ctypes.c_long) != 8:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    call = libc.syscall
    call.restype = ctypes.c_long
    return call, numbers


def _long(value: int) -> ctypes.c_long:
    # syscall(2) reads every argument as a long: a bare Python int would be passed as a C int.
    return ctypes.c_long(value)


_ONE = _long(1)


def outcome(result: int) -> OSError | None:
    """What an ``io_event``'s ``res`` says: None for success, the error for ``-errno``."""
    return None if result >= 0 else OSError(-result, os.strerror(-result))


class KernelFdatasync:
    """One loop's fdatasyncs, one at a time (``LoopSync`` never has two in flight): an AIO context of one
    request, one eventfd the loop watches, and one ``struct iocb`` reused for every request."""

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> KernelFdatasync | None:
        """A kernel fdatasync for ``loop``, or None where the kernel or the platform cannot give one."""
        found = _syscall()
        if found is None:
            return None
        call, numbers = found
        context = ctypes.c_ulong(0)
        if call(_long(numbers[0]), _ONE, ctypes.byref(context)) != 0:
            return None  # io_setup refused: ENOSYS, EPERM (a seccomp filter), EAGAIN (fs.aio-max-nr)
        return cls(loop, call, numbers, context)

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        call: Callable[..., int],
        numbers: tuple[int, int, int, int],
        context: ctypes.c_ulong,
    ) -> None:
        self._loop = loop
        self._call = call
        _, self._io_destroy, self._io_submit, self._io_getevents = map(_long, numbers)
        self._context: ctypes.c_ulong | None = context
        self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._iocb = _Iocb(aio_lio_opcode=_IOCB_CMD_FDSYNC, aio_flags=_IOCB_FLAG_RESFD, aio_resfd=self._eventfd)
        self._iocbs = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(self._iocb))
        self._event = (_IoEvent * 1)()
        self._no_wait = _Timespec(0, 0)
        self._done: Done | None = None
        loop.add_reader(self._eventfd, self._completed)

    def fdatasync(self, fd: int, done: Done) -> None:
        """Start ``fdatasync(fd)``; ``done(error)`` is called on the loop once it returned. Raises OSError if the
        kernel refuses the request (nothing started then: the caller syncs another way)."""
        if self._done is not None or self._context is None:
            raise RuntimeError("one kernel fdatasync at a time, on an open context")
        self._iocb.aio_fildes = fd
        if self._call(self._io_submit, self._context, _ONE, self._iocbs) != 1:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        self._done = done

    def _completed(self) -> None:
        """The eventfd's reader: collect the finished request and tell its caller."""
        try:
            os.eventfd_read(self._eventfd)
        except BlockingIOError:
            return  # woken for nothing
        if self._done is None or self._context is None:
            return
        got = self._call(self._io_getevents, self._context, _ONE, _ONE, self._event, ctypes.byref(self._no_wait))
        if got == 0:
            # The kernel signals the eventfd once the event is in the ring, so this cannot happen; should it, the
            # request is finishing: wait for it rather than leave its callers waiting for a signal already spent.
            got = self._call(self._io_getevents, self._context, _ONE, _ONE, self._event, None)
        done, self._done = self._done, None
        if got < 0:  # cannot happen with this context and these arguments; never leave a caller waiting
            number = ctypes.get_errno()
            done(OSError(number, f"io_getevents: {os.strerror(number)}"))
            return
        done(outcome(self._event[0].res))

    def close(self) -> None:
        """Release the context and the eventfd (``io_destroy`` waits for a request still running)."""
        if self._context is None:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._eventfd)
        self._call(self._io_destroy, self._context)
        self._context = None
        os.close(self._eventfd)
