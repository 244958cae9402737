"""Keep-alive connections spread over the worker processes (donjon.connection_balance).

The table is shared between processes, so the other workers here are real processes: small Python
children that join the table, count connections and wait.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from donjon import connection_balance
from donjon.connection_balance import BOARD_ENV, ConnectionBoard, create_board, worker_board
from tests.live_server import LiveServer

# A worker stand-in: joins the table at argv[1], holds argv[2] connections, says so, waits for its stdin.
_WORKER = """
import sys
from pathlib import Path
from donjon.connection_balance import ConnectionBoard
board = ConnectionBoard(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    board.opened()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def board_path() -> Iterator[Path]:
    path = create_board(2)
    yield path
    path.unlink(missing_ok=True)


def _other_worker(path: Path, connections: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(path), str(connections)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _end(child: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    child.send_signal(sig)
    child.wait(10)


def _slots(path: Path) -> list[tuple[int, int]]:
    raw = path.read_bytes()
    values = [int.from_bytes(raw[i : i + 8], sys.byteorder, signed=True) for i in range(0, len(raw), 8)]
    return list(zip(values[::2], values[1::2], strict=True))


def test_a_worker_two_connections_above_another_moves_one(board_path: Path) -> None:
    other = _other_worker(board_path, 3)
    try:
        mine = ConnectionBoard(board_path)
        for _ in range(4):
            mine.opened()
        assert not mine.over_share()  # 4 against 3: as even as it gets
        mine.opened()
        assert mine.over_share()  # 5 against 3
        mine.closed()
        assert not mine.over_share()
        assert sorted(_slots(board_path)) == sorted([(os.getpid(), 4), (other.pid, 3), (0, 0), (0, 0)])
    finally:
        _end(other)


def test_a_dead_workers_slot_is_not_compared_with_and_is_taken_by_its_replacement(board_path: Path) -> None:
    dead = _other_worker(board_path, 0)
    _end(dead)
    mine = ConnectionBoard(board_path)
    for _ in range(5):
        mine.opened()
    assert not mine.over_share()  # 5 against a dead worker's 0: nowhere to send a client
    assert (dead.pid, 0) not in _slots(board_path)  # and its slot was cleared on the way
    replacement = _other_worker(board_path, 0)
    try:
        assert mine.over_share()  # a live worker with room
    finally:
        _end(replacement)


def test_a_worker_that_begins_its_shutdown_leaves_the_table(board_path: Path) -> None:
    other = _other_worker(board_path, 5)
    try:
        mine = ConnectionBoard(board_path)
        mine.leave()
        mine.opened()
        assert (os.getpid(), 0) not in _slots(board_path)
        assert all(pid != os.getpid() for pid, _ in _slots(board_path))
        assert not mine.over_share()
    finally:
        _end(other)


def test_a_new_server_removes_the_tables_its_killed_predecessors_left() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    first = create_board(1)
    orphan = first.with_name(f"donjon-connections-{dead.pid}-x")
    first.rename(orphan)  # as a server killed with SIGKILL leaves it
    live = create_board(1)  # this process's: it is alive
    try:
        newest = create_board(1)
        newest.unlink()
        assert not orphan.exists()
        assert live.exists()
    finally:
        orphan.unlink(missing_ok=True)
        live.unlink(missing_ok=True)


def test_without_a_free_slot_the_worker_serves_unbalanced(
    board_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    others = [_other_worker(board_path, 0) for _ in range(4)]  # create_board(2): four slots
    try:
        monkeypatch.setenv(BOARD_ENV, str(board_path))
        monkeypatch.setattr(connection_balance, "_board", None)
        assert worker_board() is None
        assert "not balanced" in caplog.text
        assert BOARD_ENV not in os.environ  # not tried again for every connection
    finally:
        for child in others:
            _end(child)


def _workers(supervisor: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == supervisor and b"spawn_main" in cmdline:
            workers.append(int(entry.name))
    return workers


def _established_per_worker(workers: list[int], port: int) -> Counter[int]:
    """How many established connections to ``port`` each worker holds, read from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
                inodes.add(fields[9])
    held: Counter[int] = Counter({pid: 0 for pid in workers})
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


def test_keep_alive_clients_opened_at_once_end_up_even_over_the_workers(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "server", workers=2).start()
    clients: list[http.client.HTTPConnection] = []
    try:
        assert server.process is not None
        workers = _workers(server.process.pid)
        assert len(workers) == 2
        # Both workers are in the table once started, before any connection (one that joined on its first
        # connection would never be sent any: the other would see no one to send clients to).
        (board,) = Path("/dev/shm").glob(f"donjon-connections-{server.process.pid}-*")
        deadline = time.monotonic() + 20
        while {pid for pid, _ in _slots(board)} != {*workers, 0} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {pid for pid, _ in _slots(board)} == {*workers, 0}
        # Sixteen clients connect in one burst, as a pool or a benchmark does: they land where they land
        # (without balance, mostly on one worker: 1/15, 4/12, 5/11, 16/0 were seen).
        clients += [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in range(16)]
        barrier = threading.Barrier(len(clients))
        statuses: list[int] = []
        lock = threading.Lock()

        def use(client: http.client.HTTPConnection) -> None:
            barrier.wait()
            client.connect()
            for _ in range(40):  # http.client reconnects by itself after a Connection: close
                client.request("GET", "/v1/secrets", headers={"X-Project-Id": "balance"})
                response = client.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)

        threads = [threading.Thread(target=use, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert statuses == [200] * 16 * 40  # every request answered, none lost to a move
        # Until a round moves no client: each answer with Connection: close closed its client's socket.
        for _ in range(20):
            for client in clients:
                client.request("GET", "/v1/secrets", headers={"X-Project-Id": "balance"})
                client.getresponse().read()
            if all(client.sock is not None for client in clients):
                break
        held = _established_per_worker(workers, server.port)
        assert sum(held.values()) == 16, held
        assert max(held.values()) - min(held.values()) <= 1, held
    finally:
        for client in clients:
            client.close()
        server.stop()


def test_with_one_worker_no_connection_is_moved(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "server", workers=1).start()
    try:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for _ in range(5):
            client.request("GET", "/v1/secrets", headers={"X-Project-Id": "balance"})
            response = client.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("connection") != "close"
        client.close()
    finally:
        server.stop()
