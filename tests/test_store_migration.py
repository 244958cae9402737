"""Moving payloads between secret stores (``donjon manage migrate-store``) on real OpenBao and PyKMIP, three DBs.

A payload moved database -> vault -> kmip -> database reads back byte-exact at every step through the API,
the store it left no longer holds it, and secrets whose lifecycle needs the database store stay there.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings, StoreConfig
from donjon.keystores.keyring import open_chain
from donjon.services.project_keys import ProjectKeys
from donjon.services.store_migration import StoreMigration
from donjon.services.stores import StoreRegistry
from donjon.storage.database import Database
from donjon.storage.tables import secrets
from donjon.stores import PayloadInfo, PayloadMissing, SecretStore, StoredPayload
from tests.components.kmip import KmipServer
from tests.components.openbao import OpenBao
from tests.conftest import BASE, Api
from tests.live_server import DONJON


@pytest.fixture
def settings(
    openbao: OpenBao,  # noqa: F811
    kmip_server: KmipServer,  # noqa: F811
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    monkeypatch.setenv("DONJON_VAULT_TOKEN", openbao.token)
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(tmp_path / "root.key")}),
        stores={
            "vault-kv": StoreConfig(type="vault", options={"url": openbao.url, "prefix": "moves"}),
            "hsm": StoreConfig(type="kmip", options=kmip_server.options()),
        },
        lifecycle={"run_in_server": False},
        orders={"run_in_server": False},
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=BASE) as test_client:
        yield test_client


@pytest.fixture
def migration(settings: Settings) -> Iterator[StoreMigration]:
    db = Database(settings.effective_database_url, pool_size=2)
    keystore = open_chain(settings.keystore_chain())
    registry = StoreRegistry.open(settings.configured_stores(), settings.default_store)
    try:
        yield StoreMigration(db, ProjectKeys(db, keystore, settings.kek_cache_seconds), registry, batch=3)
    finally:
        registry.close()
        keystore.close()
        db.dispose()


def rows(database_url: str, project_id: str) -> dict[str, Any]:
    db = Database(database_url, pool_size=1)
    try:
        with db.read() as conn:
            return {r.id: r for r in conn.execute(select(secrets).where(secrets.c.project_id == project_id))}
    finally:
        db.dispose()


def kmip_has(client: TestClient, row: Any) -> bool:
    """Whether the PyKMIP server still holds the object ``row`` pointed at (asked through the store itself)."""
    store = client.app.state.ctx.secret_stores.registry.store("hsm")  # type: ignore[attr-defined]
    try:
        info = PayloadInfo(row.id, row.project_id, row.secret_type, row.algorithm, row.bit_length)
        store.get(info, StoredPayload(ref=row.store_ref))
        return True
    except PayloadMissing:
        return False


def store_mixed(api: Api, n: int) -> dict[str, tuple[bytes, str]]:
    """``n`` secrets of several types; returns id -> (payload, Accept to read it with)."""
    made: dict[str, tuple[bytes, str]] = {}
    for i in range(n):
        if i % 3 == 0:
            text = f"password-{i}-{uuid.uuid4()}"
            made[api.create_secret(payload=text, payload_content_type="text/plain")] = (text.encode(), "text/plain")
        else:
            blob = os.urandom(32) if i % 3 == 1 else bytes(range(256)) + os.urandom(7)
            kind = {"secret_type": "symmetric", "algorithm": "aes", "bit_length": 256} if len(blob) == 32 else {}
            secret_id = api.create_secret(
                payload=base64.b64encode(blob).decode(),
                payload_content_type="application/octet-stream",
                payload_content_encoding="base64",
                **kind,
            )
            made[secret_id] = (blob, "application/octet-stream")
    return made


def assert_reads_back(api: Api, made: dict[str, tuple[bytes, str]]) -> None:
    for secret_id, (payload, accept) in made.items():
        r = api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": accept})
        assert (r.status_code, r.content) == (200, payload), secret_id


def test_round_trip_through_every_store_is_byte_exact(
    client: TestClient,
    migration: StoreMigration,
    database_url: str,
    openbao: OpenBao,  # noqa: F811
    kmip_server: KmipServer,  # noqa: F811
) -> None:
    api = Api(client, f"project-{uuid.uuid4()}")
    bystander = Api(client, f"project-{uuid.uuid4()}")
    made = store_mixed(api, 8)
    untouched = store_mixed(bystander, 2)
    assert migration.pending("database", api.project_id) == 8

    progress: list[int] = []
    report = migration.run("database", "vault-kv", api.project_id, on_progress=progress.append)
    assert (report.moved, report.skipped, sum(progress)) == (8, [], 8)
    in_vault = rows(database_url, api.project_id)
    for row in in_vault.values():
        assert (row.store, row.ciphertext, row.kek_id) == ("vault-kv", None, None)
        assert openbao.kv_has(row.store_ref)
    assert_reads_back(api, made)
    assert all(r.store is None for r in rows(database_url, bystander.project_id).values()), "--project leaked"

    report = migration.run("vault-kv", "hsm", api.project_id)
    assert report.moved == 8
    in_kmip = rows(database_url, api.project_id)
    assert {r.store for r in in_kmip.values()} == {"hsm"}
    for secret_id, row in in_vault.items():
        assert not openbao.kv_has(row.store_ref), "the vault object outlived the move"
        assert kmip_has(client, in_kmip[secret_id])
    assert_reads_back(api, made)

    report = migration.run("hsm", "database", api.project_id)
    assert report.moved == 8
    back = rows(database_url, api.project_id)
    for secret_id, row in back.items():
        assert row.store is None and row.store_ref is None and row.ciphertext and row.kek_id
        assert not kmip_has(client, in_kmip[secret_id]), "the KMIP object outlived the move"
    assert_reads_back(api, made)
    assert_reads_back(bystander, untouched)
    assert migration.pending("hsm", api.project_id) == 0


def test_limited_and_versioned_secrets_stay_in_the_database(
    client: TestClient, migration: StoreMigration, database_url: str
) -> None:
    api = Api(client, f"project-{uuid.uuid4()}")
    plain = api.create_secret(payload="moves", payload_content_type="text/plain")
    limited = api.create_secret(payload="once", payload_content_type="text/plain", max_reads=1)
    versioned = api.create_secret(payload="v1", payload_content_type="text/plain")
    r = api.post(f"/v1/secrets/{versioned}/versions", json={"payload": "v2", "payload_content_type": "text/plain"})
    assert r.status_code in (200, 201), r.text

    report = migration.run("database", "vault-kv", api.project_id)
    assert report.moved == 1 and sorted(report.skipped) == sorted([limited, versioned])
    assert all("database store" in report.reasons[s] for s in report.skipped)
    stored = rows(database_url, api.project_id)
    assert (stored[plain].store, stored[limited].store, stored[versioned].store) == ("vault-kv", None, None)
    r = api.get(f"/v1/secrets/{limited}/payload", headers={"Accept": "text/plain"})
    assert (r.status_code, r.text) == (200, "once")
    r = api.get(f"/v1/secrets/{versioned}/payload", headers={"Accept": "text/plain"})
    assert (r.status_code, r.text) == (200, "v2")


class DeletingStore:
    """A real store that deletes the secret's row right after its payload reached it: the window in which a
    client's DELETE races the move."""

    def __init__(self, inner: SecretStore, database_url: str) -> None:
        self._inner = inner
        self.kind = inner.kind
        self._url = database_url
        self.put_refs: list[str] = []

    def put(self, info: PayloadInfo, payload: bytes) -> StoredPayload:
        stored = self._inner.put(info, payload)
        assert stored.ref is not None
        self.put_refs.append(stored.ref)
        db = Database(self._url, pool_size=1)
        try:
            with db.write() as conn:
                conn.execute(delete(secrets).where(secrets.c.id == info.secret_id))
        finally:
            db.dispose()
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class DeletingRegistry(StoreRegistry):
    """The real registry, whose stores delete the secret's row as soon as a payload reaches them."""

    def __init__(self, inner: StoreRegistry, database_url: str) -> None:
        self._deleting = {name: DeletingStore(store, database_url) for name, store in inner._external.items()}
        super().__init__(self._deleting, inner.default, inner.started)

    @property
    def put_refs(self) -> list[str]:
        return [ref for store in self._deleting.values() for ref in store.put_refs]


def test_a_secret_deleted_during_its_move_leaves_nothing_in_the_target(
    client: TestClient,
    settings: Settings,
    database_url: str,
    openbao: OpenBao,  # noqa: F811
) -> None:
    api = Api(client, f"project-{uuid.uuid4()}")
    secret_id = api.create_secret(payload="raced", payload_content_type="text/plain")
    db = Database(database_url, pool_size=1)
    keystore = open_chain(settings.keystore_chain())
    inner = StoreRegistry.open(settings.configured_stores(), settings.default_store)
    registry = DeletingRegistry(inner, database_url)
    try:
        report = StoreMigration(db, ProjectKeys(db, keystore, 0), registry).run("database", "vault-kv", api.project_id)
    finally:
        inner.close()
        keystore.close()
        db.dispose()
    assert report.moved == 0 and report.skipped == [secret_id]
    assert report.reasons[secret_id] == "changed or deleted during the move"
    assert registry.put_refs and not openbao.kv_has(registry.put_refs[0]), "orphan left in the target store"


def test_unknown_or_identical_stores_are_refused(migration: StoreMigration) -> None:
    from donjon.errors import ConfigurationError, Unavailable

    with pytest.raises(Unavailable, match="not configured"):
        migration.run("database", "nowhere")
    with pytest.raises(ConfigurationError, match="same"):
        migration.run("vault-kv", "vault-kv")


def write_config(path: Path, settings: Settings) -> Path:
    lines = [
        f"database_url = {json.dumps(settings.effective_database_url)}",
        f"data_dir = {json.dumps(str(settings.data_dir))}",
        "[keystore]",
        'type = "file"',
        f"options = {{ path = {json.dumps(settings.keystore.options['path'])} }}",
    ]
    for name, store in settings.stores.items():
        options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in store.options.items())
        lines += [f'[stores."{name}"]', f"type = {json.dumps(store.type)}", f"options = {{ {options} }}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_cli_moves_a_project_and_says_what_it_left(
    client: TestClient,
    settings: Settings,
    database_url: str,
    openbao: OpenBao,  # noqa: F811
    tmp_path: Path,
) -> None:
    api = Api(client, f"project-{uuid.uuid4()}")
    made = store_mixed(api, 5)
    limited = api.create_secret(payload="once", payload_content_type="text/plain", max_reads=1)
    config = write_config(tmp_path / "donjon.toml", settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env |= {"DONJON_CONFIG": str(config), "DONJON_VAULT_TOKEN": openbao.token}

    def migrate(source: str, target: str, *more: str) -> subprocess.CompletedProcess[str]:
        args = [DONJON, "manage", "migrate-store", "--from", source, "--to", target, *more]
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)

    run = migrate("database", "vault-kv", "--project", api.project_id)
    assert run.returncode == 2, run.stderr
    assert "5 secrets moved from database to vault-kv" in run.stderr
    assert f"left in database: {limited} (limited or versioned" in run.stderr
    stored = rows(database_url, api.project_id)
    assert {stored[s].store for s in made} == {"vault-kv"} and stored[limited].store is None
    assert_reads_back(api, made)

    back = migrate("vault-kv", "database", "--project", api.project_id)
    assert back.returncode == 0, back.stderr
    assert "5 secrets moved from vault-kv to database" in back.stderr
    assert all(not openbao.kv_has(stored[s].store_ref) for s in made)
    assert_reads_back(api, made)

    bad = migrate("database", "nowhere")
    assert bad.returncode == 1 and "'nowhere'" in bad.stderr and "Traceback" not in bad.stderr
