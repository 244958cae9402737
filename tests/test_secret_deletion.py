"""Hard delete, proven in the database: a deleted secret's ciphertext is in no table and no SQLite page;
a tombstone records it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.config import LifecycleConfig, Settings
from donjon.storage.database import Database
from donjon.storage.tables import secret_versions, secrets
from tests.conftest import Api
from tests.lifecycle_helpers import (
    ciphertext_of,
    db_fixture,  # noqa: F401  (the module's ``db`` fixture)
    tables_holding,
    tombstone,
)
from tests.openapi_conformance import check_responses


def test_delete_removes_the_ciphertext_from_every_table(api: Api, db: Database) -> None:
    sid = api.create_secret(name="doomed", payload="hard-delete-me", payload_content_type="text/plain")
    api.post(f"/v1/secrets/{sid}/versions", json={"payload": "v2", "payload_content_type": "text/plain"})
    blob = ciphertext_of(db, sid)
    with db.read() as conn:
        old = conn.execute(select(secret_versions.c.ciphertext).where(secret_versions.c.secret_id == sid)).scalar_one()
    assert tables_holding(db, blob) == ["secrets.ciphertext"]
    assert tables_holding(db, bytes(old)) == ["secret_versions.ciphertext"]
    assert api.delete(f"/v1/secrets/{sid}").status_code == 204
    assert tables_holding(db, blob) == []
    assert tables_holding(db, bytes(old)) == []
    with db.read() as conn:
        assert conn.execute(select(secrets).where(secrets.c.id == sid)).first() is None
    stone = tombstone(db, sid)
    assert (stone.deleted_reason, stone.name, stone.project_id) == ("deleted", "doomed", api.project_id)
    assert api.get(f"/v1/secrets/{sid}").status_code == 404


def test_sqlite_file_holds_no_deleted_ciphertext(db: Database, settings: Settings, tmp_path: Any) -> None:
    """On SQLite, secure_delete zeroes freed cells: after a checkpoint the file itself has no trace.

    Runs on a database of its own: checkpoints are not run on the session's shared database."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL and MariaDB keep dead row versions until VACUUM / purge: see docs")
    from donjon.api.app import create_app
    from donjon.storage import migrate

    path = tmp_path / "own.sqlite"
    own = Database(f"sqlite:///{path}", pool_size=1)
    migrate.upgrade(own)
    update = {"database_url": f"sqlite:///{path}", "lifecycle": LifecycleConfig(run_in_server=False)}
    with TestClient(create_app(settings.model_copy(update=update)), base_url="http://localhost:9311") as client:
        api = Api(check_responses(client), f"file-{datetime.now(UTC).timestamp()}")
        sid = api.create_secret(name="f", payload="file-level", payload_content_type="text/plain")
        blob = ciphertext_of(own, sid)
        assert api.delete(f"/v1/secrets/{sid}").status_code == 204
    with own.read() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    own.dispose()
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    assert blob[12:40] not in data and (not wal.exists() or blob[12:40] not in wal.read_bytes())
