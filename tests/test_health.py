"""``/livez`` and ``/readyz`` (issue 13, item 3): unauthenticated probes, not audited; ``/readyz`` answers 503
naming the check that failed (the database, the schema's migrations, the keystore, the audit log)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import AuditConfig, KeystoreConfig, LifecycleConfig, OrderConfig, Settings
from donjon.storage import migrate
from donjon.storage.database import Database
from tests import databases
from tests.conftest import BASE

CHECKS = {"database", "migrations", "keystore", "audit"}


def settings_for(data_dir: Path, database_url: str, **extra: object) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        lifecycle=LifecycleConfig(run_in_server=False),
        orders=OrderConfig(run_in_server=False),
        **extra,  # type: ignore[arg-type]
    )


OpenClient = Callable[[Settings], TestClient]


@pytest.fixture
def client_of() -> Iterator[OpenClient]:
    clients: list[TestClient] = []

    def open_client(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings), base_url=BASE)
        client.__enter__()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)


def test_livez_answers_without_credentials(app_client: TestClient) -> None:
    r = app_client.get("/livez")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_is_ready_when_every_check_passes(app_client: TestClient) -> None:
    r = app_client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": dict.fromkeys(CHECKS, "ok")}


def test_readyz_is_503_when_the_schema_is_behind(database_url: str, tmp_path: Path, client_of: OpenClient) -> None:
    kind = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}[
        make_url(database_url).get_backend_name()
    ]
    url = databases.fresh_database(kind, tmp_path)
    try:
        db = Database(url, pool_size=1)
        head = migrate.head_revision(db)
        script = ScriptDirectory.from_config(migrate._config(db))
        previous = script.get_revision(head).down_revision
        assert isinstance(previous, str)
        migrate.upgrade(db, previous)
        db.dispose()
        client = client_of(settings_for(tmp_path / "data", url))
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert r.json() == {
            "status": "not ready",
            "checks": {"database": "ok", "migrations": "behind", "keystore": "ok", "audit": "ok"},
        }
        assert client.get("/livez").status_code == 200  # alive: a restart would not help
    finally:
        databases.drop_database(kind, url)


def test_readyz_is_503_when_the_database_is_unreachable(
    tmp_path: Path, client_of: OpenClient, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://donjon:pa55-in-url@127.0.0.1:{port}/donjon"
    client = client_of(settings_for(tmp_path, url))
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"database": "unreachable", "migrations": "unknown", "keystore": "ok", "audit": "ok"}
    # Neither the answer (unauthenticated) nor the log says more than which check failed.
    assert "pa55-in-url" not in r.text and "pa55-in-url" not in caplog.text
    assert "readiness: database check failed" in caplog.text


def test_a_database_that_hangs_is_a_timeout_and_one_connection_only(tmp_path: Path, client_of: OpenClient) -> None:
    """A "PostgreSQL" that accepts connections and never answers: each probe answers in about the timeout,
    and the probes after the first wait for the same check instead of opening more connections."""
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def accept() -> None:
            while True:
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        client = client_of(settings_for(tmp_path, f"postgresql+psycopg://donjon@127.0.0.1:{port}/donjon"))
        readiness = client.app.state.ctx.readiness  # type: ignore[attr-defined]
        readiness.timeout, readiness.ttl = 0.3, 0.0  # each probe looks again
        try:
            for _ in range(3):
                r = client.get("/readyz")
                assert r.status_code == 503
                assert r.json()["checks"] == {
                    "database": "timeout",
                    "migrations": "unknown",
                    "keystore": "ok",
                    "audit": "ok",
                }
            assert len(accepted) == 1
        finally:
            for conn in accepted:
                conn.close()  # the hung check ends (the driver sees the connection closed)


def test_readyz_is_503_when_the_audit_log_cannot_be_written(
    settings: Settings, tmp_path: Path, client_of: OpenClient
) -> None:
    log_path = tmp_path / "audit" / "audit.log"
    client = client_of(settings_for(tmp_path, settings.database_url, audit=AuditConfig(path=log_path)))
    assert client.get("/readyz").json()["checks"]["audit"] == "ok"
    log_path.unlink()
    log_path.mkdir()  # replaced by something that cannot be appended to
    client.app.state.ctx.readiness.ttl = 0.0  # type: ignore[attr-defined]  # no shared result: look again
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["audit"] == "not writable"


def test_readyz_says_disabled_for_an_audit_log_turned_off(
    settings: Settings, tmp_path: Path, client_of: OpenClient
) -> None:
    client = client_of(settings_for(tmp_path, settings.database_url, audit=AuditConfig(enabled=False)))
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["audit"] == "disabled"


def test_probes_are_not_audited(settings: Settings, tmp_path: Path, client_of: OpenClient) -> None:
    log_path = tmp_path / "audit.log"
    client = client_of(settings_for(tmp_path, settings.database_url, audit=AuditConfig(path=log_path)))
    before = log_path.read_bytes() if log_path.exists() else b""
    for path in ("/livez", "/readyz", "/healthcheck"):
        assert client.get(path).status_code == 200
    assert (log_path.read_bytes() if log_path.exists() else b"") == before
    # ... while an API request is.
    client.get("/v1/secrets", headers={"X-Project-Id": "p"})
    assert log_path.read_bytes() != before
