"""Standalone token mode: tokens issued by donjon authenticate API calls, expire, and can be revoked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.auth.tokens import TokenService, load_token_key, parse_ttl
from donjon.config import KeystoreConfig, Settings
from donjon.errors import InvalidInput, Unauthorized
from donjon.storage.database import Database
from donjon.storage.tables import api_tokens
from tests.clock import MovableClock
from tests.conftest import BASE
from tests.openapi_conformance import check_responses


@pytest.fixture(scope="module")
def token_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("token-data")
    return Settings(
        auth="token",
        database_url=database_url,
        data_dir=data_dir,
        host_href=BASE,
        token_cache_seconds=0,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
    )


@pytest.fixture(scope="module")
def service(token_settings: Settings) -> Iterator[TokenService]:
    db = Database(token_settings.effective_database_url)
    yield TokenService(db, load_token_key(token_settings.effective_token_key_file, create=True), cache_seconds=0)
    db.dispose()


@pytest.fixture(scope="module")
def client(token_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(token_settings), base_url=BASE) as c:
        yield check_responses(c)


def test_token_key_file_is_private(token_settings: Settings, service: TokenService) -> None:
    mode = stat.S_IMODE(token_settings.effective_token_key_file.stat().st_mode)
    assert mode == 0o600


def test_a_token_authenticates_as_its_project_user_and_roles(client: TestClient, service: TokenService) -> None:
    issued = service.issue(project_id="tok-p1", user_id="alice", roles=["member"], ttl=timedelta(hours=1))
    r = client.post(
        "/v1/secrets",
        json={"payload": "s3cr3t", "payload_content_type": "text/plain"},
        headers={"X-Auth-Token": issued.token},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["secret_ref"]
    meta = client.get(ref, headers={"Authorization": f"Bearer {issued.token}"}).json()
    assert meta["creator_id"] == "alice"
    # X-Project-Id is ignored in token mode: the token decides the project.
    listed = client.get("/v1/secrets", headers={"X-Auth-Token": issued.token, "X-Project-Id": "other"}).json()
    assert [s["secret_ref"] for s in listed["secrets"]] == [ref]


def test_roles_of_the_token_are_enforced(client: TestClient, service: TokenService) -> None:
    reader = service.issue(project_id="tok-p2", user_id="bob", roles=["reader"], ttl=timedelta(hours=1))
    r = client.post("/v1/secrets", json={"name": "x"}, headers={"X-Auth-Token": reader.token})
    assert r.status_code == 403
    assert r.json()["code"] == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Project-Id": "tok-p1"},
        {"X-Auth-Token": "nonsense"},
        {"X-Auth-Token": "djt_" + "0" * 32 + "_" + "A" * 43},
        {"Authorization": "Basic dXNlcjpwdw=="},
    ],
)
def test_missing_or_bad_tokens_are_401(client: TestClient, headers: dict[str, str]) -> None:
    r = client.get("/v1/secrets", headers=headers)
    assert r.status_code == 401
    assert r.json() == {
        "code": 401,
        "title": "Unauthorized",
        "description": "The request you have made requires authentication.",
    }


def test_a_token_with_a_wrong_secret_is_refused(client: TestClient, service: TokenService) -> None:
    issued = service.issue(project_id="tok-p3", user_id="carol", roles=["member"], ttl=timedelta(hours=1))
    forged = issued.token[:-2] + ("AA" if not issued.token.endswith("AA") else "BB")
    assert client.get("/v1/secrets", headers={"X-Auth-Token": forged}).status_code == 401
    assert client.get("/v1/secrets", headers={"X-Auth-Token": issued.token}).status_code == 200


def test_revoked_tokens_are_refused(client: TestClient, service: TokenService) -> None:
    issued = service.issue(project_id="tok-p4", user_id="dave", roles=["member"], ttl=timedelta(hours=1))
    assert client.get("/v1/secrets", headers={"X-Auth-Token": issued.token}).status_code == 200
    assert service.revoke(issued.record.id)
    assert client.get("/v1/secrets", headers={"X-Auth-Token": issued.token}).status_code == 401
    assert not service.revoke(issued.record.id)


def test_expired_tokens_are_refused(token_settings: Settings, clock: MovableClock) -> None:
    db = Database(token_settings.effective_database_url)
    service = TokenService(db, load_token_key(token_settings.effective_token_key_file, create=False), clock=clock)
    short = service.issue(project_id="tok-p4", user_id="dave", roles=["member"], ttl=timedelta(seconds=60))
    with TestClient(create_app(token_settings, clock=clock), base_url=BASE) as client:
        assert client.get("/v1/secrets", headers={"X-Auth-Token": short.token}).status_code == 200
        clock.advance(59)
        assert client.get("/v1/secrets", headers={"X-Auth-Token": short.token}).status_code == 200
        clock.advance(1)  # expires_at <= now
        assert client.get("/v1/secrets", headers={"X-Auth-Token": short.token}).status_code == 401
    db.dispose()


def test_only_a_keyed_hash_is_stored(token_settings: Settings, service: TokenService) -> None:
    issued = service.issue(project_id="tok-p5", user_id="erin", roles=["admin"], ttl=None)
    secret_part = issued.token.split("_", 2)[2]  # djt_<uuid hex>_<secret>: the secret itself may hold "_"
    assert len(secret_part) == 43  # the whole 32-byte secret, unpadded base64url
    db = Database(token_settings.effective_database_url)
    with db.read() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == issued.record.id)).one()
    db.dispose()
    assert secret_part not in str(tuple(row))
    assert issued.token not in repr(issued) and secret_part not in repr(issued.record)


def test_cache_does_not_outlive_revocation_in_the_same_process(token_settings: Settings) -> None:
    db = Database(token_settings.effective_database_url)
    key = load_token_key(token_settings.effective_token_key_file, create=False)
    cached = TokenService(db, key, cache_seconds=60)
    issued = cached.issue(project_id="tok-p6", user_id="frank", roles=["member"], ttl=None)
    assert cached.authenticate(issued.token).user_id == "frank"
    cached.revoke(issued.record.id)
    with pytest.raises(Unauthorized):
        cached.authenticate(issued.token)
    db.dispose()


def test_a_revocation_elsewhere_takes_effect_when_the_cached_entry_expires(token_settings: Settings) -> None:
    db = Database(token_settings.effective_database_url)
    key = load_token_key(token_settings.effective_token_key_file, create=False)
    clock = MovableClock(frozen=True)
    node_a = TokenService(db, key, cache_seconds=10, clock=clock)
    node_b = TokenService(db, key, cache_seconds=10)
    issued = node_b.issue(project_id="tok-p7", user_id="grace", roles=["member"], ttl=None)
    assert node_a.authenticate(issued.token).user_id == "grace"
    node_b.revoke(issued.record.id)  # another node: node_a's cache does not hear of it
    clock.advance(9.9)
    assert node_a.authenticate(issued.token).user_id == "grace"  # the documented revocation delay
    clock.advance(0.1)
    with pytest.raises(Unauthorized):
        node_a.authenticate(issued.token)
    db.dispose()


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("24h", 86400), ("30d", 2592000)])
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0h", "24", "1w", "-1h", "h"])
def test_parse_ttl_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ttl(text)


def _donjon(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DONJON_DATA_DIR": str(data_dir), "DONJON_AUTH": "token"}
    env.pop("DONJON_CONFIG", None)
    exe = Path(sys.executable).with_name("donjon")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_bootstrap_create_list_revoke(tmp_path: Path) -> None:
    first = _donjon(tmp_path, "token", "bootstrap")
    assert first.returncode == 0, first.stderr
    admin = first.stdout.strip()
    assert admin.startswith("djt_")
    again = _donjon(tmp_path, "token", "bootstrap")
    assert again.returncode != 0 and "exist" in again.stderr

    created = _donjon(tmp_path, "token", "create", "--project", "p9", "--role", "member", "--ttl", "2h")
    assert created.returncode == 0, created.stderr
    member = created.stdout.strip()
    listing = _donjon(tmp_path, "token", "list")
    assert listing.returncode == 0
    assert "project=p9" in listing.stdout and "roles=member" in listing.stdout
    assert member not in listing.stdout and admin not in listing.stdout
    token_id = [line.split()[0] for line in listing.stdout.splitlines() if "project=p9" in line][0]
    assert _donjon(tmp_path, "token", "revoke", token_id).returncode == 0
    assert "revoked" in _donjon(tmp_path, "token", "list", "--project", "p9").stdout
    bad = _donjon(tmp_path, "token", "create", "--project", "p9", "--role", "member", "--ttl", "soon")
    assert bad.returncode != 0 and "invalid duration" in bad.stderr
