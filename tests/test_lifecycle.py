"""Lifecycle (donjon extensions) on SQLite, PostgreSQL and MariaDB: hard delete proven in the database,
limited secrets, tombstones and the expiry reaper, wrapped hand-off, versions, and purge-project."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import LargeBinary, select
from starlette.testclient import TestClient

from donjon.cli.main import cli
from donjon.config import CONFIG_ENV, LifecycleConfig, Settings
from donjon.crypto import open_payload
from donjon.keystores import open_keystore
from donjon.services.project_keys import ProjectKeys
from donjon.services.purge import purge_project, shred_project_keys
from donjon.services.reaper import Reaper
from donjon.storage.database import Database
from donjon.storage.tables import metadata, project_keks, secret_tombstones, secret_versions, secret_wraps, secrets
from donjon.timeutil import SYSTEM_CLOCK, Clock
from tests.clock import MovableClock
from tests.conftest import Api
from tests.openapi_conformance import check_responses

# --- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
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


# --- hard delete ---------------------------------------------------------------------------------------


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


# --- limited secrets -----------------------------------------------------------------------------------


def test_max_reads_serves_n_times_then_the_secret_is_gone(api: Api, db: Database) -> None:
    sid = api.create_secret(name="twice", payload="read-me-twice", payload_content_type="text/plain", max_reads=2)
    blob = ciphertext_of(db, sid)
    meta = api.get(f"/v1/secrets/{sid}").json()
    assert "max_reads" not in meta and "reads_left" not in meta  # the Barbican representation is unchanged
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json()["reads_left"] == 2
    r1 = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert (r1.status_code, r1.content) == (200, b"read-me-twice")
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json() == {
        "max_reads": 2,
        "reads_left": 1,
        "current_version": 1,
        "versions": [{"version": 1, "created": meta["created"], "readable_until": None}],
    }
    r2 = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert (r2.status_code, r2.content) == (200, b"read-me-twice")
    r3 = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert r3.status_code == 404
    assert set(r3.json()) == {"code", "title", "description"}
    assert api.get(f"/v1/secrets/{sid}").status_code == 404
    assert tables_holding(db, blob) == []
    assert tombstone(db, sid).deleted_reason == "read-limit"


def test_a_refused_read_spends_nothing(api: Api) -> None:
    sid = api.create_secret(
        name="bin", payload=base64.b64encode(b"\xff\xfe").decode(), payload_content_type="application/octet-stream",
        payload_content_encoding="base64", max_reads=1,
    )  # fmt: skip
    # Not UTF-8: a text/plain read is 406 and must not burn the only read.
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"}).status_code == 406
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/xml"}).status_code == 406
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json()["reads_left"] == 1
    ok = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/octet-stream"})
    assert (ok.status_code, ok.content) == (200, b"\xff\xfe")


def test_max_reads_with_two_step_create(api: Api) -> None:
    sid = api.create_secret(name="later", max_reads=1)
    assert api.put(f"/v1/secrets/{sid}", content=b"two-step", headers={"Content-Type": "text/plain"}).status_code == 204
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"}).content == b"two-step"
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 404


@pytest.mark.parametrize("value", [0, -1, 1_000_001, "1", 1.5, True, None, [1]])
def test_max_reads_validation(api: Api, value: Any) -> None:
    r = api.post(
        "/v1/secrets", json={"name": "x", "payload": "p", "payload_content_type": "text/plain", "max_reads": value}
    )
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"code", "title", "description"}
    assert "max_reads" in r.json()["description"]
    assert api.get("/v1/secrets").json()["total"] == 0


def test_limited_secrets_in_lists_keep_barbicans_keys(api: Api) -> None:
    api.create_secret(name="limited", payload="p", payload_content_type="text/plain", max_reads=3)
    (item,) = api.get("/v1/secrets").json()["secrets"]
    assert "max_reads" not in item and "reads_left" not in item


# --- expiry reaper and tombstones ----------------------------------------------------------------------


def test_reaper_deletes_expired_ciphertext_and_leaves_a_tombstone(
    clocked_api: Api, db: Database, clocked_client: TestClient, clock: MovableClock
) -> None:
    api = clocked_api
    sid = api.create_secret(
        name="brief", payload="expiring", payload_content_type="text/plain", expiration=clock.iso_in(10)
    )
    keep = api.create_secret(
        name="keep", payload="staying", payload_content_type="text/plain", expiration=clock.iso_in(3600)
    )
    blob = ciphertext_of(db, sid)
    service = reaper_of(clocked_client)
    service.reap_once()
    assert tables_holding(db, blob) == ["secrets.ciphertext"]  # not expired yet
    clock.advance(10)
    # The API hides it at once, before the reaper runs (as Barbican: expired secrets are 404).
    assert api.get(f"/v1/secrets/{sid}").status_code == 404
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 404
    report = service.reap_once()
    assert report.expired >= 1
    assert tables_holding(db, blob) == []
    stone = tombstone(db, sid)
    assert (stone.deleted_reason, stone.name) == ("expired", "brief")
    assert stone.expiration is not None and stone.deleted_at >= stone.expiration
    assert api.get(f"/v1/secrets/{keep}/payload").content == b"staying"
    assert tombstone(db, keep) is None


def test_reap_delay_keeps_ciphertext_until_it_passes(
    clocked_api: Api, db: Database, settings: Settings, clock: MovableClock
) -> None:
    sid = clocked_api.create_secret(
        name="d", payload="delayed", payload_content_type="text/plain", expiration=clock.iso_in(10)
    )
    blob = ciphertext_of(db, sid)
    clock.advance(10)
    delayed = _reaper(db, settings, LifecycleConfig(reap_delay_seconds=3600), clock)
    delayed.reap_once()
    assert tables_holding(db, blob) == ["secrets.ciphertext"]
    clock.advance(3600)
    delayed.reap_once()
    assert tables_holding(db, blob) == []


def test_reapers_on_several_nodes_reap_each_secret_once(
    clocked_api: Api, db: Database, settings: Settings, clock: MovableClock
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    soon = clock.iso_in(30)
    ids = [
        clocked_api.create_secret(name=f"n{i}", payload=f"p{i}", payload_content_type="text/plain", expiration=soon)
        for i in range(30)
    ]
    clock.advance(30)
    config = LifecycleConfig(reap_batch_size=4)
    nodes = [_reaper(Database(db.url, pool_size=2), settings, config, clock) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda s: s.reap_once(), nodes))
    with db.read() as conn:
        stones = conn.execute(
            select(secret_tombstones.c.id).where(
                secret_tombstones.c.id.in_(ids), secret_tombstones.c.deleted_reason == "expired"
            )
        ).all()
        left = conn.execute(select(secrets.c.id).where(secrets.c.id.in_(ids))).all()
    assert len(stones) == 30 and left == []
    assert sum(r.expired for r in reports) >= 30  # other tests' expired secrets may be reaped too


def _reaper(db: Database, settings: Settings, config: LifecycleConfig, clock: Clock = SYSTEM_CLOCK) -> Reaper:
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    keys = ProjectKeys(db, keystore, 60, clock=clock)
    return Reaper(db, keys, config, clock=clock)


# --- wrapped hand-off ----------------------------------------------------------------------------------


def test_wrap_token_works_once_without_other_credentials(api: Api, app_client: TestClient, db: Database) -> None:
    sid = api.create_secret(name="boot", payload="vm-bootstrap-secret", payload_content_type="text/plain")
    r = api.post(f"/v1/secrets/{sid}/wrap", json={"ttl": 60})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"wrap_token", "expires"}
    token = body["wrap_token"]
    with db.read() as conn:
        digests = [row.digest for row in conn.execute(select(secret_wraps).where(secret_wraps.c.secret_id == sid))]
    assert len(digests) == 1 and token not in digests[0] and token.split("_", 2)[2] not in digests[0]
    # No X-Project-Id, no token: the wrap token is the only credential.
    got = app_client.post("/v1/unwrap", headers={"X-Wrap-Token": token, "Accept": "text/plain"})
    assert (got.status_code, got.content) == (200, b"vm-bootstrap-secret")
    assert got.headers["cache-control"] == "no-store"
    again = app_client.post("/v1/unwrap", headers={"X-Wrap-Token": token, "Accept": "text/plain"})
    assert again.status_code == 404
    assert set(again.json()) == {"code", "title", "description"}
    # The secret itself is untouched by the hand-off.
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"vm-bootstrap-secret"


def test_wrap_token_refusals_all_look_alike(api: Api, app_client: TestClient) -> None:
    sid = api.create_secret(name="w", payload="wrapped", payload_content_type="text/plain")
    token = api.post(f"/v1/secrets/{sid}/wrap").json()["wrap_token"]  # no body: the default TTL
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    answers = [
        app_client.post("/v1/unwrap", headers=h)
        for h in (
            {},
            {"X-Wrap-Token": "nonsense"},
            {"X-Wrap-Token": forged},
            {"X-Wrap-Token": "djw_" + "0" * 32 + "_" + "a" * 43},
        )
    ]
    assert {(a.status_code, a.json()["description"]) for a in answers} == {(404, "Wrap token not found.")}
    assert app_client.post("/v1/unwrap", headers={"X-Wrap-Token": token}).content == b"wrapped"


def test_expired_wrap_token_is_refused(
    clocked_api: Api, clocked_client: TestClient, db: Database, clock: MovableClock
) -> None:
    api, app_client = clocked_api, clocked_client
    sid = api.create_secret(name="w", payload="short-lived", payload_content_type="text/plain")
    token = api.post(f"/v1/secrets/{sid}/wrap", json={"ttl": 60}).json()["wrap_token"]
    clock.advance(60)
    assert app_client.post("/v1/unwrap", headers={"X-Wrap-Token": token}).status_code == 404
    reaper_of(app_client).reap_once()
    with db.read() as conn:
        assert conn.execute(select(secret_wraps).where(secret_wraps.c.secret_id == sid)).first() is None


def test_wrap_policy_and_validation(api: Api) -> None:
    sid = api.create_secret(name="w", payload="p", payload_content_type="text/plain")
    reader = Api(api.client, api.project_id, "reader-user")
    denied = reader.post(f"/v1/secrets/{sid}/wrap", headers={"X-Roles": "reader"})
    assert denied.status_code == 403  # wrapping needs secret:decrypt, which readers lack
    assert api.other_project().post(f"/v1/secrets/{sid}/wrap").status_code == 404
    for bad in ({"ttl": 0}, {"ttl": 86401}, {"ttl": "60"}, {"ttl": True}, [1]):
        r = api.post(f"/v1/secrets/{sid}/wrap", json=bad)
        assert r.status_code == 400, (bad, r.text)
    assert (
        api.post(f"/v1/secrets/{sid}/wrap", content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert (
        api.post(f"/v1/secrets/{sid}/wrap", content=b"ttl=5", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    empty = api.create_secret(name="no payload")
    assert api.post(f"/v1/secrets/{empty}/wrap").status_code == 404


def test_unwrap_of_a_limited_secret_spends_a_read(api: Api, app_client: TestClient) -> None:
    sid = api.create_secret(name="once", payload="one-shot", payload_content_type="text/plain", max_reads=1)
    token = api.post(f"/v1/secrets/{sid}/wrap").json()["wrap_token"]
    assert app_client.post("/v1/unwrap", headers={"X-Wrap-Token": token}).content == b"one-shot"
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 404


def test_concurrent_unwraps_serve_once(api: Api, app_client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sid = api.create_secret(name="race", payload="only-once", payload_content_type="text/plain")
    token = api.post(f"/v1/secrets/{sid}/wrap").json()["wrap_token"]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: app_client.post("/v1/unwrap", headers={"X-Wrap-Token": token}), range(10)))
    assert sorted(a.status_code for a in answers) == [200] + [404] * 9


# --- versions ------------------------------------------------------------------------------------------


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
    service = _reaper(db, settings, LifecycleConfig())
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
    assert _reaper(db, settings, LifecycleConfig()).reap_once(now=later).versions >= 2
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


# --- purge-project (crypto-shredding) ------------------------------------------------------------------


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


def _fresh_app(settings: Settings) -> Any:
    from donjon.api.app import create_app

    return create_app(settings.model_copy(update={"lifecycle": LifecycleConfig(run_in_server=False)}))


def test_tombstones_are_kept_for_the_retention_then_reaped(api: Api, db: Database, settings: Settings) -> None:
    sid = api.create_secret(name="t", payload="p", payload_content_type="text/plain")
    api.delete(f"/v1/secrets/{sid}")
    service = _reaper(db, settings, LifecycleConfig(tombstone_retention_seconds=3600))
    service.reap_once()
    assert tombstone(db, sid) is not None
    service.reap_once(now=datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=3700))
    assert tombstone(db, sid) is None


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
