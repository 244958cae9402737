"""Wrapped hand-off: a wrap token fetches the payload once, without other credentials; refusals look
alike."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.storage.database import Database
from donjon.storage.tables import secret_wraps
from tests.clock import MovableClock
from tests.conftest import Api
from tests.lifecycle_helpers import (
    db_fixture,  # noqa: F401  (the module's ``db`` fixture)
    reaper_of,
)


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
