"""Helpers of the lifecycle tests (donjon extensions), each feature in its own file: what the database
holds, proven by reading it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import LargeBinary, select
from starlette.testclient import TestClient

from donjon.config import LifecycleConfig, Settings
from donjon.keystores import open_keystore
from donjon.services.lifecycle import LifecycleDeps
from donjon.services.project_keys import ProjectKeys
from donjon.services.reaper import Reaper
from donjon.storage.database import Database
from donjon.storage.tables import metadata, secret_tombstones, secrets
from donjon.timeutil import SYSTEM_CLOCK, Clock


@pytest.fixture(scope="module", name="db")
def db_fixture(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    database.dispose()


def ciphertext_of(db: Database, secret_id: str) -> bytes:
    with db.read() as conn:
        blob = conn.execute(select(secrets.c.ciphertext).where(secrets.c.id == secret_id)).scalar_one()
    assert isinstance(blob, bytes) and len(blob) > 28
    return bytes(blob)


def tables_holding(db: Database, needle: bytes) -> list[str]:
    """Every (table.column) of the schema whose binary value contains ``needle``."""
    found = []
    with db.read() as conn:
        for table in metadata.sorted_tables:
            for column in table.c:
                if isinstance(column.type, LargeBinary):
                    for (value,) in conn.execute(select(column).where(column.is_not(None))):
                        if needle in bytes(value):
                            found.append(f"{table.name}.{column.name}")
    return found


def tombstone(db: Database, secret_id: str) -> Any:
    with db.read() as conn:
        return conn.execute(select(secret_tombstones).where(secret_tombstones.c.id == secret_id)).first()


def reaper_of(client: TestClient) -> Reaper:
    service = client.app.state.ctx.expiry  # type: ignore[attr-defined]
    assert isinstance(service, Reaper)
    return service


def new_reaper(db: Database, settings: Settings, config: LifecycleConfig, clock: Clock = SYSTEM_CLOCK) -> Reaper:
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    keys = ProjectKeys(db, keystore, 60, clock=clock)
    return Reaper(LifecycleDeps(db, keys, config, clock=clock))
