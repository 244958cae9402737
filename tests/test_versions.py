"""Versions: a new payload becomes current, previous ones stay readable for the grace period, each
bound to its version; KEK rotation reseals them all."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.config import LifecycleConfig, Settings
from donjon.crypto import open_payload
from donjon.keystores import open_keystore
from donjon.storage.database import Database
from donjon.storage.tables import project_keks, secret_versions, secrets
from tests.conftest import Api
from tests.lifecycle_helpers import (
    db_fixture,  # noqa: F401  (the module's ``db`` fixture)
    new_reaper,
    tables_holding,
)


def test_versions_rotate_and_previous_stays_readable(api: Api, db: Database) -> None:
    sid = api.create_secret(name="db-password", payload="first", payload_content_type="text/plain")
    r = api.post(f"/v1/secrets/{sid}/versions", json={"payload": "second", "payload_content_type": "text/plain"})
    assert r.status_code == 201, r.text
    assert r.json() == {"secret_ref": f"http://localhost:9311/v1/secrets/{sid}", "version": 2}
    bin3 = base64.b64encode(b"\x00third").decode()
    r3 = api.post(
        f"/v1/secrets/{sid}/versions",
        json={
            "payload": bin3,
            "payload_content_type": "application/octet-stream",
            "payload_content_encoding": "base64",
        },
    )
    assert r3.json()["version"] == 3
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"\x00third"
    assert api.get(f"/v1/secrets/{sid}").json()["content_types"] == {"default": "application/octet-stream"}
    assert api.get(f"/v1/secrets/{sid}/payload?version=1", headers={"Accept": "text/plain"}).content == b"first"
    assert api.get(f"/v1/secrets/{sid}/payload?version=2", headers={"Accept": "*/*"}).content == b"second"
    assert api.get(f"/v1/secrets/{sid}/payload?version=3").content == b"\x00third"
    assert api.get(f"/v1/secrets/{sid}/payload?version=4").status_code == 404
    for bad in ("0", "-1", "x", "1.5", ""):
        assert api.get(f"/v1/secrets/{sid}/payload?version={bad}").status_code == 400
    info = api.get(f"/v1/secrets/{sid}/lifecycle").json()
    assert info["current_version"] == 3 and [v["version"] for v in info["versions"]] == [1, 2, 3]
    assert info["versions"][0]["readable_until"] is not None and info["versions"][2]["readable_until"] is None
    # Another project sees nothing; a reader (no secret:decrypt) may not read old versions.
    assert api.other_project().get(f"/v1/secrets/{sid}/payload?version=1").status_code == 404
    reader = Api(api.client, api.project_id, "reader-user")
    assert reader.get(f"/v1/secrets/{sid}/payload?version=1", headers={"X-Roles": "reader"}).status_code == 403


def test_version_ciphertexts_are_bound_to_their_version(api: Api, db: Database, app_client: TestClient) -> None:
    sid = api.create_secret(name="bound", payload="one", payload_content_type="text/plain")
    api.post(f"/v1/secrets/{sid}/versions", json={"payload": "two", "payload_content_type": "text/plain"})
    with db.read() as conn:
        row = conn.execute(select(secrets).where(secrets.c.id == sid)).one()
        old = conn.execute(select(secret_versions).where(secret_versions.c.secret_id == sid)).one()
    keys = app_client.app.state.ctx.secrets._keys  # type: ignore[attr-defined]
    kek = keys.get(row.project_id, row.kek_id)
    assert open_payload(kek, row.ciphertext, secret_id=sid, project_id=row.project_id, version=2) == b"two"
    assert open_payload(kek, old.ciphertext, secret_id=sid, project_id=row.project_id, version=1) == b"one"
    from donjon.crypto import DecryptionFailed

    with pytest.raises(DecryptionFailed):  # version 2's bytes presented as version 1 (a swap) fail to open
        open_payload(kek, row.ciphertext, secret_id=sid, project_id=row.project_id, version=1)


def test_versions_past_grace_are_reaped(api: Api, db: Database, settings: Settings) -> None:
    sid = api.create_secret(name="g", payload="old", payload_content_type="text/plain")
    api.post(f"/v1/secrets/{sid}/versions", json={"payload": "new", "payload_content_type": "text/plain"})
    with db.read() as conn:
        old = bytes(
            conn.execute(select(secret_versions.c.ciphertext).where(secret_versions.c.secret_id == sid)).scalar_one()
        )
    service = new_reaper(db, settings, LifecycleConfig())
    service.reap_once()
    assert tables_holding(db, old) == ["secret_versions.ciphertext"]
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1, seconds=5)
    assert service.reap_once(now=later).versions >= 1
    assert tables_holding(db, old) == []
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"new"
    assert api.get(f"/v1/secrets/{sid}/payload?version=1").status_code == 404


def test_each_version_was_created_when_it_became_current(api: Api, db: Database, settings: Settings) -> None:
    def now() -> datetime:
        return datetime.now(UTC).replace(tzinfo=None)

    sid = api.create_secret(name="rotated", payload="v1", payload_content_type="text/plain")
    created = datetime.fromisoformat(api.get(f"/v1/secrets/{sid}").json()["created"])
    windows = []
    for payload in ("v2", "v3"):
        before = now()
        r = api.post(f"/v1/secrets/{sid}/versions", json={"payload": payload, "payload_content_type": "text/plain"})
        assert r.status_code == 201, r.text
        windows.append((before, now()))
    # A metadata change moves the secret's updated_at, not when its version started.
    assert api.put(f"/v1/secrets/{sid}/metadata", json={"metadata": {"k": "v"}}).status_code == 201

    def starts() -> list[datetime]:
        info = api.get(f"/v1/secrets/{sid}/lifecycle").json()
        return [datetime.fromisoformat(v["created"]) for v in info["versions"]]

    v1, v2, v3 = starts()
    # Before the fix, version 2 showed version 1's readable_until (a day ahead) and version 3 version 2's.
    assert v1 == created
    assert windows[0][0] <= v2 <= windows[0][1]
    assert windows[1][0] <= v3 <= windows[1][1]
    # Past the grace period the archived versions are reaped; the current version keeps its start.
    later = now() + timedelta(days=1, seconds=5)
    assert new_reaper(db, settings, LifecycleConfig()).reap_once(now=later).versions >= 2
    assert starts() == [v3]


def test_version_refusals(api: Api) -> None:
    sid = api.create_secret(name="v", payload="p", payload_content_type="text/plain")
    for bad, status in [
        ({}, 400),
        ({"payload": "x"}, 400),
        ({"payload": "  ", "payload_content_type": "text/plain"}, 400),
        ({"payload": 5, "payload_content_type": "text/plain"}, 400),
        ({"payload": "x", "payload_content_type": "image/png"}, 400),
        (
            {"payload": "!!", "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"},
            400,
        ),
        ({"payload": "x", "payload_content_type": "text/plain", "payload_content_encoding": "gzip"}, 400),
        ({"payload": "x" * 20001, "payload_content_type": "text/plain"}, 413),
        ([], 400),
    ]:
        r = api.post(f"/v1/secrets/{sid}/versions", json=bad)
        assert r.status_code == status, (bad, r.text)
        assert set(r.json()) == {"code", "title", "description"}
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json()["current_version"] == 1
    empty = api.create_secret(name="none")
    assert (
        api.post(
            f"/v1/secrets/{empty}/versions", json={"payload": "x", "payload_content_type": "text/plain"}
        ).status_code
        == 409
    )
    limited = api.create_secret(name="l", payload="p", payload_content_type="text/plain", max_reads=1)
    assert (
        api.post(
            f"/v1/secrets/{limited}/versions", json={"payload": "x", "payload_content_type": "text/plain"}
        ).status_code
        == 409
    )
    # Barbican's PUT on a secret that has a payload stays Barbican's 409.
    assert api.put(f"/v1/secrets/{sid}", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 409
    assert (
        api.other_project()
        .post(f"/v1/secrets/{sid}/versions", json={"payload": "x", "payload_content_type": "text/plain"})
        .status_code
        == 404
    )


def test_kek_rotation_reseals_every_version(api: Api, db: Database, settings: Settings, app_client: TestClient) -> None:
    """rotate-kek re-seals current payloads of rotated secrets and their previous versions (each bound to
    its version number), and retires the old KEK only when no version needs it."""
    from donjon.services.rotation import KekRotation

    sid = api.create_secret(name="r", payload="one", payload_content_type="text/plain")
    api.post(f"/v1/secrets/{sid}/versions", json={"payload": "two", "payload_content_type": "text/plain"})
    api.post(f"/v1/secrets/{sid}/versions", json={"payload": "three", "payload_content_type": "text/plain"})
    with db.read() as conn:
        (old_kek,) = conn.execute(select(secrets.c.kek_id).where(secrets.c.id == sid)).one()
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    report = KekRotation(db, keystore).rotate(api.project_id, settle_seconds=0, sleep=lambda _: None)
    assert report.resealed == 3 and report.retired == [old_kek], report
    with db.read() as conn:
        assert conn.execute(select(project_keks).where(project_keks.c.id == old_kek)).first() is None
    app_client.app.state.ctx.secrets._keys.forget()  # type: ignore[attr-defined]
    for version, value in ((1, b"one"), (2, b"two"), (3, b"three")):
        assert api.get(f"/v1/secrets/{sid}/payload?version={version}").content == value
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"three"
