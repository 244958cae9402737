"""A PostgreSQL server of a test's own, made with ``initdb`` in a temporary directory on a free port, that the
test may stop (as an outage or a crash) and start again without touching the machine's shared server.

Uses the Debian packages' binaries (``/usr/lib/postgresql/<version>/bin``), which ``scripts/test`` installs
with the local server. PostgreSQL refuses to run as root: as root, the directory goes to the ``postgres``
user and every command runs as it (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.live_server import free_port


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL's initdb is not installed (Debian package postgresql)")
    return found[-1].parent


@dataclass
class PostgresInstance:
    root: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=_bin_dir)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}{self._log()}")

    def _log(self) -> str:
        log = self.root / "postgresql.log"
        return log.read_text()[-2000:] if log.exists() else ""

    def init(self) -> PostgresInstance:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "postgresql.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: an orderly shutdown that cuts every client; ``immediate``: a crash (recovery on start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def postgres_instance() -> Iterator[PostgresInstance]:
    """A started instance, stopped and deleted afterwards."""
    # Not under pytest's tmp dir: its parents are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="donjon-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    instance = PostgresInstance(root).init()
    instance.start()
    try:
        yield instance
    finally:
        if instance.running():
            try:
                instance.stop("immediate")
            except RuntimeError:
                time.sleep(1)
        shutil.rmtree(root, ignore_errors=True)
