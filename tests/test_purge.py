"""purge-project (crypto-shredding): the project's keys first, then every row."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.cli.main import cli
from donjon.config import CONFIG_ENV, LifecycleConfig, Settings
from donjon.keystores import open_keystore
from donjon.services.project_keys import ProjectKeys
from donjon.services.purge import purge_project, shred_project_keys
from donjon.storage.database import Database
from donjon.storage.tables import metadata, project_keks, secrets
from tests.conftest import Api
from tests.lifecycle_helpers import (
    db_fixture,  # noqa: F401  (the module's ``db`` fixture)
    tables_holding,
)
from tests.openapi_conformance import check_responses


def _fill_project(api: Api) -> list[str]:
    ids = [
        api.create_secret(name=f"s{i}", payload=f"project-secret-{i}", payload_content_type="text/plain")
        for i in range(3)
    ]
    api.post(f"/v1/secrets/{ids[0]}/versions", json={"payload": "rotated", "payload_content_type": "text/plain"})
    api.put(f"/v1/secrets/{ids[1]}/acl", json={"read": {"users": ["u9"], "project-access": False}})
    api.at("1.1").post(
        f"/v1/secrets/{ids[1]}/consumers", json={"service": "nova", "resource_type": "vm", "resource_id": "i-1"}
    )
    c = api.post(
        "/v1/containers",
        json={
            "type": "generic",
            "name": "c",
            "secret_refs": [{"name": "a", "secret_ref": f"http://localhost:9311/v1/secrets/{ids[2]}"}],
        },
    )
    assert c.status_code == 201, c.text
    assert api.post("/v1/orders", json={"type": "password", "meta": {"length": 12}}).status_code == 202
    api.put(f"/v1/project-quotas/{api.project_id}", json={"project_quotas": {"secrets": 50}})
    return ids


def _undecryptable(db: Database, settings: Settings, project_id: str, kek_ids: dict[str, str]) -> None:
    """A fresh process (no KEK cache) can no longer open any remaining ciphertext of the project."""
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    keys = ProjectKeys(db, keystore, 60)
    with db.read() as conn:
        assert conn.execute(select(project_keks).where(project_keks.c.project_id == project_id)).first() is None
        rows = conn.execute(select(secrets.c.id, secrets.c.kek_id).where(secrets.c.project_id == project_id)).all()
    for secret_id, kek_id in rows:
        assert kek_id is None
        with pytest.raises(LookupError):
            keys.get(project_id, kek_ids[secret_id])


def _fresh_app(settings: Settings) -> Any:
    from donjon.api.app import create_app

    return create_app(settings.model_copy(update={"lifecycle": LifecycleConfig(run_in_server=False)}))


def test_purge_project_shreds_keys_first_then_deletes_everything(
    api: Api, db: Database, settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _fill_project(api)
    bystander = api.other_project()
    theirs = bystander.create_secret(name="b", payload="bystander", payload_content_type="text/plain")
    with db.read() as conn:
        kek_ids = dict(conn.execute(select(secrets.c.id, secrets.c.kek_id).where(secrets.c.id.in_(ids))).all())
    config = tmp_path / "donjon.toml"
    config.write_text(
        f'database_url = "{settings.database_url}"\ndata_dir = "{settings.data_dir}"\n'
        f'[keystore]\ntype = "file"\noptions = {{ path = "{settings.data_dir / "root.key"}" }}\n'
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))  # restored after the test (the CLI sets it for the process)
    refused = CliRunner().invoke(cli, ["manage", "purge-project", api.project_id, "--config", str(config)], input="n\n")
    assert refused.exit_code != 0
    assert api.get(f"/v1/secrets/{ids[0]}/payload").content == b"rotated"
    done = CliRunner().invoke(cli, ["manage", "purge-project", api.project_id, "--yes", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert "project_keks: 1" in done.output
    _undecryptable(db, settings, api.project_id, kek_ids)
    with db.read() as conn:
        for table in metadata.sorted_tables:
            if "project_id" in table.c:
                assert conn.execute(select(table).where(table.c.project_id == api.project_id)).first() is None, (
                    table.name
                )
    assert api.get("/v1/secrets").json()["total"] == 0
    assert bystander.get(f"/v1/secrets/{theirs}/payload").content == b"bystander"


def test_purge_interrupted_after_the_key_step_leaves_nothing_decryptable(
    api: Api, db: Database, settings: Settings
) -> None:
    ids = _fill_project(api)
    bystander = api.other_project()
    theirs = bystander.create_secret(name="b", payload="bystander", payload_content_type="text/plain")
    with db.read() as conn:
        kek_ids = dict(conn.execute(select(secrets.c.id, secrets.c.kek_id).where(secrets.c.id.in_(ids))).all())
        blobs = [bytes(b) for (b,) in conn.execute(select(secrets.c.ciphertext).where(secrets.c.id.in_(ids)))]
    assert shred_project_keys(db, api.project_id) == 1  # only step 1, then "the process dies"
    _undecryptable(db, settings, api.project_id, kek_ids)
    assert all(tables_holding(db, b) == ["secrets.ciphertext"] for b in blobs)  # bytes remain, but are noise
    # Through a fresh server (no cached KEK): no payload is served, and nothing is a 500.
    with TestClient(_fresh_app(settings), base_url="http://localhost:9311") as fresh:
        other = Api(check_responses(fresh), api.project_id)
        for sid in ids:
            assert other.get(f"/v1/secrets/{sid}/payload").status_code == 404
            assert other.get(f"/v1/secrets/{sid}/payload?version=1").status_code == 404
        assert Api(fresh, bystander.project_id).get(f"/v1/secrets/{theirs}/payload").content == b"bystander"
    # Running the purge again finishes the job.
    counts = purge_project(db, api.project_id)
    assert counts["secrets"] >= 3 and counts["project_keks"] == 0  # + the password order's secret
