"""Wrap tokens (issue 12, finding 10): a token never outlives its creator's access to the payload, and one
secret has a bounded number of tokens outstanding. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from donjon.storage import migrate
from donjon.storage.database import Database
from donjon.storage.tables import secret_wraps
from donjon.timeutil import utcnow
from tests import databases
from tests.conftest import Api

NOT_FOUND = {"code": 404, "title": "Not Found", "description": "Wrap token not found."}


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    database.dispose()


def unwrap(client: TestClient, token: str) -> tuple[int, bytes]:
    r = client.post("/v1/unwrap", headers={"X-Wrap-Token": token, "Accept": "text/plain"})
    return r.status_code, r.content


def shared_with(api: Api, user: str) -> tuple[str, Api]:
    """A secret of ``api``'s project whose read ACL names ``user`` of another project (a member there)."""
    secret_id = api.create_secret(name="shared", payload="handed-on", payload_content_type="text/plain")
    assert api.put(f"/v1/secrets/{secret_id}/acl", json={"read": {"users": [user]}}).status_code == 200
    other = Api(api.client, f"other-{uuid.uuid4()}", user)
    return secret_id, other


def test_a_token_made_through_an_acl_dies_with_the_acl_entry(api: Api, app_client: TestClient) -> None:
    secret_id, acl_user = shared_with(api, "acl-user")
    member = {"X-Roles": "member"}
    kept = acl_user.post(f"/v1/secrets/{secret_id}/wrap", headers=member).json()["wrap_token"]
    revoked = acl_user.post(f"/v1/secrets/{secret_id}/wrap", headers=member).json()["wrap_token"]
    assert unwrap(app_client, kept) == (200, b"handed-on")

    assert api.put(f"/v1/secrets/{secret_id}/acl", json={"read": {"users": []}}).status_code == 200
    assert acl_user.get(f"/v1/secrets/{secret_id}/payload", headers=member).status_code == 404
    r = app_client.post("/v1/unwrap", headers={"X-Wrap-Token": revoked})
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    # The token is spent, not suspended: giving the access back does not revive it.
    assert api.put(f"/v1/secrets/{secret_id}/acl", json={"read": {"users": ["acl-user"]}}).status_code == 200
    assert unwrap(app_client, revoked)[0] == 404


def test_the_owner_can_still_hand_on_after_sharing_ends(api: Api, app_client: TestClient) -> None:
    secret_id, _ = shared_with(api, "someone")
    token = api.post(f"/v1/secrets/{secret_id}/wrap").json()["wrap_token"]
    assert api.delete(f"/v1/secrets/{secret_id}/acl").status_code == 200
    assert unwrap(app_client, token) == (200, b"handed-on")


def test_a_token_dies_when_its_maker_loses_project_access(api: Api, app_client: TestClient) -> None:
    # A member (not the creator) wraps; the secret then becomes private to its creator.
    secret_id = api.create_secret(name="private", payload="creator-only", payload_content_type="text/plain")
    colleague = {"X-User-Id": "colleague", "X-Roles": "member"}
    token = api.post(f"/v1/secrets/{secret_id}/wrap", headers=colleague).json()["wrap_token"]
    own = api.post(f"/v1/secrets/{secret_id}/wrap", headers={"X-Roles": "member"}).json()["wrap_token"]
    body = {"read": {"project-access": False}}
    assert api.put(f"/v1/secrets/{secret_id}/acl", json=body).status_code == 200
    assert api.get(f"/v1/secrets/{secret_id}/payload", headers=colleague).status_code == 403
    assert unwrap(app_client, token)[0] == 404
    assert unwrap(app_client, own) == (200, b"creator-only")


def test_outstanding_tokens_per_secret_are_bounded(api: Api, app_client: TestClient, db: Database) -> None:
    secret_id = api.create_secret(name="bounded", payload="p", payload_content_type="text/plain")
    tokens = [api.post(f"/v1/secrets/{secret_id}/wrap").json()["wrap_token"] for _ in range(20)]
    r = api.post(f"/v1/secrets/{secret_id}/wrap")
    assert r.status_code == 409
    assert r.json()["description"] == (
        "The secret has 20 wrap tokens outstanding, the most allowed: wait for one to be used or to expire."
    )
    assert unwrap(app_client, tokens[0]) == (200, b"p")
    assert api.post(f"/v1/secrets/{secret_id}/wrap").status_code == 201
    # An expired token no longer counts (and goes at the next wrap, before the reaper's pass).
    with db.write() as conn:
        conn.execute(
            update(secret_wraps)
            .where(secret_wraps.c.secret_id == secret_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert api.post(f"/v1/secrets/{secret_id}/wrap").status_code == 201
    with db.read() as conn:
        assert len(conn.execute(select(secret_wraps.c.id).where(secret_wraps.c.secret_id == secret_id)).all()) == 1


def test_concurrent_wraps_never_exceed_the_bound(api: Api, db: Database) -> None:
    secret_id = api.create_secret(name="raced", payload="p", payload_content_type="text/plain")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: api.post(f"/v1/secrets/{secret_id}/wrap").status_code, range(30)))
    assert sorted(statuses) == [201] * 20 + [409] * 10
    with db.read() as conn:
        assert len(conn.execute(select(secret_wraps.c.id).where(secret_wraps.c.secret_id == secret_id)).all()) == 20


def test_wrapping_a_secret_deleted_meanwhile_is_404(api: Api) -> None:
    # Neither a foreign-key 500 nor a deadlock (MariaDB, once wrap and delete locked in opposite orders).
    for _ in range(5):
        secret_id = api.create_secret(name="gone", payload="p", payload_content_type="text/plain")
        with ThreadPoolExecutor(8) as pool:
            wraps = [pool.submit(api.post, f"/v1/secrets/{secret_id}/wrap") for _ in range(8)]
            deleted = pool.submit(api.delete, f"/v1/secrets/{secret_id}")
            statuses = {w.result().status_code for w in wraps}
        assert deleted.result().status_code == 204
        assert statuses <= {201, 404}


def test_the_upgrade_revokes_tokens_that_have_no_creator(tmp_path: Path) -> None:
    db = Database(databases.fresh_database("sqlite", tmp_path), pool_size=1)
    try:
        migrate.upgrade(db, "0005")
        with db.write() as conn:
            conn.exec_driver_sql(
                "INSERT INTO secrets (id, project_id, secret_type, created_at, updated_at, version) "
                "VALUES ('s1', 'p', 'opaque', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)"
            )
            conn.exec_driver_sql(
                "INSERT INTO secret_wraps (id, digest, secret_id, project_id, created_at, expires_at) "
                "VALUES ('w1', 'd', 's1', 'p', '2026-01-01 00:00:00', '2999-01-01 00:00:00')"
            )
        migrate.upgrade(db)
        with db.read() as conn:
            assert conn.execute(select(secret_wraps.c.id)).all() == []
    finally:
        db.dispose()
