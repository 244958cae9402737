"""A fresh NSS database for the session, made the way an operator would: ``certutil -N`` with a password."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class NssDatabase:
    db_dir: Path
    password: str = field(repr=False)
    pin_file: Path

    def options(self, **extra: Any) -> dict[str, Any]:
        """Options of an ``nss`` keystore on this database."""
        return {"db_dir": str(self.db_dir), "pin_file": str(self.pin_file), **extra}


def create_database(directory: Path, password: str | None = None) -> NssDatabase:
    password = password or secrets.token_urlsafe(12)
    db_dir = directory / "db"
    db_dir.mkdir(parents=True)
    pin_file = directory / "db.pw"
    pin_file.write_text(password + "\n")
    pin_file.chmod(0o600)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db_dir}", "-f", str(pin_file)], check=True, capture_output=True)
    return NssDatabase(db_dir=db_dir, password=password, pin_file=pin_file)


@pytest.fixture(scope="session")
def nss_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NssDatabase]:
    if not shutil.which("certutil"):
        pytest.skip("NSS tools are not installed (apt install libnss3-tools; ./scripts/test does it)")
    yield create_database(tmp_path_factory.mktemp("nss"))
