"""Keep-alive connections spread evenly over the worker processes.

The workers accept from one listening socket, and whichever wakes first takes what is waiting: a burst of
new connections (a client's pool opening, a benchmark starting) often lands mostly on one worker. With
``Connection: close`` that evens out request by request; a keep-alive connection stays where it landed, so
one worker can serve 15 of 16 clients while the other waits. Evened out, 16 keep-alive clients read
payloads +7 % faster and store secrets +20 % faster (paired rounds against the same server unbalanced;
bench/README.md).

So each worker counts its open connections in its slot of a small table that every worker maps (a file in
``/dev/shm``, made by the supervisor). A keep-alive request that reaches a worker holding at least two
connections more than the least loaded live worker is answered with ``Connection: close``: the client opens
a new connection, which the others, less busy, are more likely to accept first; if it lands here again, the
next answer moves it again. A worker counts a connection out when it decides to close it, so that the
requests of one loop iteration do not all move away at once.

Each worker writes only its own slot; the others only read it (an aligned 8-byte store, no lock needed).
Slots are claimed, and a dead worker's slot cleared, under the file's ``flock``: a worker replacing a dead
one takes its slot. A worker that starts its graceful shutdown leaves the table, so that the others do not
send clients toward a worker that no longer accepts.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("donjon.listener")

# Where the supervisor tells its workers (in the environment they inherit) the table's path.
BOARD_ENV = "_DONJON_CONNECTION_BOARD"
_SLOT = struct.Struct("=qq")  # a worker's pid (0: free) and its open connections
_IMBALANCE = 2  # a connection moves when its worker holds this many more than the least loaded one
_PREFIX = "donjon-connections-"  # then the supervisor's pid: a table whose server died can be told apart


def create_board(workers: int) -> Path:
    """A zeroed table for ``workers`` workers, and as many again for replacements that start before the
    worker they replace has exited. Named after this process, and the tables of our servers that were
    killed before they could remove theirs are removed first."""
    shm = Path("/dev/shm")  # noqa: S108 - mkstemp: a new 0600 file of our own (O_EXCL), in memory
    where = shm if shm.is_dir() else Path(tempfile.gettempdir())
    _remove_orphans(where)
    fd, name = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=where)
    try:
        os.ftruncate(fd, _SLOT.size * 2 * workers)
    finally:
        os.close(fd)
    return Path(name)


def _remove_orphans(where: Path) -> None:
    for path in where.glob(f"{_PREFIX}*-*"):
        pid = path.name.removeprefix(_PREFIX).split("-", 1)[0]
        try:
            if pid.isdigit() and path.stat().st_uid == os.geteuid() and not _alive(int(pid)):
                path.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            continue


class ConnectionBoard:
    """One worker's view of the table: its own slot to count in, the others' to compare with."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        size = os.fstat(self._fd).st_size
        self._slots = size // _SLOT.size
        if self._slots == 0:
            os.close(self._fd)
            raise ValueError(f"{path} holds no slot")
        self._table = mmap.mmap(self._fd, self._slots * _SLOT.size)
        self._all = struct.Struct(f"={2 * self._slots}q")
        self._pid = os.getpid()
        self._count = 0
        self._left = False
        with self._locked():
            self._slot = self._claim()
            _SLOT.pack_into(self._table, self._slot * _SLOT.size, self._pid, 0)
        self._count_at = self._slot * _SLOT.size + 8

    def opened(self) -> None:
        self._count += 1
        self._publish()

    def closed(self) -> None:
        self._count -= 1
        self._publish()

    def over_share(self) -> bool:
        """Whether this worker holds ``_IMBALANCE`` connections or more above the least loaded live worker."""
        if self._left:
            return False
        values = self._all.unpack_from(self._table)
        mine = self._count
        for index in range(0, len(values), 2):
            pid, count = values[index], values[index + 1]
            if pid and count <= mine - _IMBALANCE:
                if _alive(pid):
                    return True
                self._clear(index // 2, pid)  # a worker that died: its count means nothing any more
        return False

    def leave(self) -> None:
        """Out of the table for good (a graceful shutdown begins): no one compares with this worker."""
        if not self._left:
            self._left = True
            _SLOT.pack_into(self._table, self._slot * _SLOT.size, 0, 0)

    def _publish(self) -> None:
        if not self._left:
            struct.pack_into("=q", self._table, self._count_at, self._count)

    def _claim(self) -> int:
        for slot in range(self._slots):
            pid = _SLOT.unpack_from(self._table, slot * _SLOT.size)[0]
            if pid in (0, self._pid) or not _alive(pid):
                return slot
        raise RuntimeError("every slot of the connection table is taken by a live worker")

    def _clear(self, slot: int, pid: int) -> None:
        with self._locked():
            if _SLOT.unpack_from(self._table, slot * _SLOT.size)[0] == pid:  # not claimed anew meanwhile
                _SLOT.pack_into(self._table, slot * _SLOT.size, 0, 0)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took that pid: not one of our workers
        return False
    return True


_board: ConnectionBoard | None = None


def worker_board() -> ConnectionBoard | None:
    """This worker's view of the table its supervisor made; None with one worker (nothing to balance)."""
    global _board
    if _board is None:
        path = os.environ.get(BOARD_ENV)
        if not path:
            return None
        try:
            _board = ConnectionBoard(Path(path))
        except (OSError, ValueError, RuntimeError) as exc:
            # Balance is an optimisation: without the table the worker serves as before.
            log.warning("keep-alive connections are not balanced over the workers: %s", exc)
            os.environ.pop(BOARD_ENV, None)
            return None
    return _board
