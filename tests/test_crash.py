"""kill -9 of a live server under concurrent writes, on SQLite, PostgreSQL and MariaDB: after a restart, every
secret whose 201 a client received is there byte for byte, the server takes writes again, and the
audit chain verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import databases
from tests.live_server import LiveServer
from tests.writers import Writers, read_back, wait_for

pytestmark = pytest.mark.live

WRITERS = 8
ACKNOWLEDGED = 60


@pytest.fixture(params=databases.selected())
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The server's environment for a fresh database of each kind (SQLite: the data dir's own file)."""
    kind = request.param
    if kind == "sqlite":
        yield {}
        return
    url = databases.fresh_database(kind, tmp_path)
    yield {"DONJON_DATABASE_URL": url}
    databases.drop_database(kind, url)


def test_acknowledged_secrets_survive_kill_9_under_concurrent_writes(database: dict[str, str], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    project = f"crash-{uuid.uuid4()}"
    server = LiveServer(data_dir, env=database).start()
    with Writers(server, project, threads=WRITERS) as writers:
        # Crash in the middle of the writes: dozens acknowledged, eight more in flight.
        assert wait_for(lambda: len(writers.acknowledged) >= ACKNOWLEDGED, 60), writers.answers[-5:]
        server.kill()
        assert wait_for(lambda: writers.statuses_since(0)[-WRITERS:] == [None] * WRITERS, 30)
    acknowledged, cut = writers.acknowledged, writers.statuses_since(0).count(None)
    assert set(writers.statuses_since(0)) <= {201, None}
    server = LiveServer(data_dir, port=server.port, env=database).start()
    try:
        assert read_back(server, project, acknowledged) == acknowledged
        # The restarted server takes writes again.
        with Writers(server, project, threads=2) as writers:
            assert wait_for(lambda: len(writers.acknowledged) >= 5, 30)
    finally:
        server.stop()
    assert len(acknowledged) >= ACKNOWLEDGED and cut >= WRITERS
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")} | database
    verify = subprocess.run(
        [str(Path(sys.executable).with_name("donjon")), "audit", "verify"],
        env={**env, "DONJON_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
