"""Keystone mode against a real Keystone 30: token validation, scopes, 401s, and the real clients
(``openstack secret ...`` with password auth and the catalog, Castellan's BarbicanKeyManager) end to end."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.components.keystone import Keystone
    from tests.live_server import LiveServer

pytestmark = pytest.mark.live

UNAUTHENTICATED = {
    "code": 401,
    "title": "Unauthorized",
    "description": "The request you have made requires authentication.",
}


def _get(server: LiveServer, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Accept": "application/json", **({"X-Auth-Token": token} if token is not None else {})}
    return httpx.get(server.url + path, headers=headers, timeout=30, **kw)


def _assert_401(r: httpx.Response, keystone: Keystone) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == UNAUTHENTICATED
    assert r.headers["www-authenticate"] == f'Keystone uri="{keystone.url}"'


@pytest.mark.parametrize(
    "token",
    # "huge" stays under the 8 KiB header limit (past it, the HTTP layer answers 431: test_request_heads.py).
    [None, "", "garbage", "gAAAAABbogus" + "x" * 180, "x" * 8_000, "bad token with spaces"],
    ids=["none", "empty", "garbage", "fernet-like", "huge", "spaces"],
)
def test_missing_or_invalid_token_is_401_with_challenge(
    keystone_donjon: LiveServer, keystone: Keystone, token: str | None
) -> None:
    _assert_401(_get(keystone_donjon, "/v1/secrets", token), keystone)


def test_revoked_token_is_401(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    token = keystone.issue("a-member")
    keystone.revoke(token)
    _assert_401(_get(keystone_donjon, "/v1/secrets", token), keystone)


def test_domain_scoped_and_unscoped_tokens_are_401(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    _assert_401(_get(keystone_donjon, "/v1/secrets", keystone.token("domain-reader", "domain")), keystone)
    _assert_401(_get(keystone_donjon, "/v1/secrets", keystone.token("nobody", "unscoped")), keystone)
    # A user with a role on project A cannot get an A token without one: Keystone itself refuses.
    with pytest.raises(httpx.HTTPStatusError):
        keystone.users["nobody"].project = keystone.project("A")
        try:
            keystone.issue("nobody")
        finally:
            keystone.users["nobody"].project = None


def test_project_member_token_stores_and_reads_a_secret(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    token = keystone.token("a-member")
    r = httpx.post(
        keystone_donjon.url + "/v1/secrets",
        headers={"X-Auth-Token": token},
        json={"name": "ks", "payload": "s3cr3t", "payload_content_type": "text/plain"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    ref = r.json()["secret_ref"]
    assert ref.startswith(keystone_donjon.url + "/v1/secrets/")
    meta = httpx.get(ref, headers={"X-Auth-Token": token, "Accept": "application/json"}, timeout=30).json()
    assert meta["creator_id"] == keystone.users["a-member"].id
    payload = httpx.get(ref + "/payload", headers={"X-Auth-Token": token, "Accept": "text/plain"}, timeout=30)
    assert payload.text == "s3cr3t"
    # Another project's member does not even learn that it exists; X-Project-Id is ignored in keystone mode.
    other = keystone.token("b-member")
    headers = {"X-Auth-Token": other, "Accept": "application/json", "X-Project-Id": keystone.project_id("A")}
    assert httpx.get(ref, headers=headers, timeout=30).status_code == 404


def test_system_admin_manages_project_quotas_but_not_secrets(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    token = keystone.token("sys-admin", "system")
    project_b = keystone.project_id("B")
    r = httpx.put(
        f"{keystone_donjon.url}/v1/project-quotas/{project_b}",
        headers={"X-Auth-Token": token},
        json={"project_quotas": {"secrets": 50}},
        timeout=30,
    )
    assert r.status_code == 204, r.text
    r = _get(keystone_donjon, f"/v1/project-quotas/{project_b}", token)
    assert r.status_code == 200 and r.json()["project_quotas"]["secrets"] == 50
    assert _get(keystone_donjon, "/v1/project-quotas", token).status_code == 200
    # Project-scoped operations need a project: a system token is authenticated but not authorized.
    assert _get(keystone_donjon, "/v1/secrets", token).status_code == 403
    assert _get(keystone_donjon, "/v1/quotas", token).status_code == 403
    delete = httpx.delete(f"{keystone_donjon.url}/v1/project-quotas/{project_b}", headers={"X-Auth-Token": token})
    assert delete.status_code == 204
    # A plain member may not.
    assert _get(keystone_donjon, "/v1/project-quotas", keystone.token("a-member")).status_code == 403


def test_validation_latency_cached_and_uncached(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    """Measured, not asserted tightly: a cache miss asks Keystone, a hit is a dict look-up (printed with -s)."""
    tokens = [keystone.issue("a-reader") for _ in range(10)]
    with httpx.Client(base_url=keystone_donjon.url, timeout=30) as client:

        def timed(token: str) -> float:
            t0 = time.perf_counter()
            r = client.get("/v1/quotas", headers={"X-Auth-Token": token, "Accept": "application/json"})
            assert r.status_code == 200, r.text
            return (time.perf_counter() - t0) * 1000

        # Each of donjon's worker processes has its own cache: call every token on every worker's cache by
        # repeating, then time repeats (hits) against first calls (misses).
        misses = [timed(t) for t in tokens]
        for t in tokens:
            for _ in range(4):
                timed(t)
        hits = [timed(t) for t in tokens for _ in range(3)]
    miss, hit = statistics.median(misses), statistics.median(hits)
    print(f"\nkeystone mode GET /v1/quotas: uncached median {miss:.1f} ms, cached median {hit:.1f} ms")
    assert hit < miss


# ---- the real clients ----


def test_openstack_cli_secret_store_get_list_delete(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    out = keystone.openstack("a-member", "secret", "store", "-n", name, "-p", "cli-s3cr3t", "-f", "json")
    href = json.loads(out.stdout)["Secret href"]
    assert href.startswith(keystone.donjon_url + "/v1/secrets/")
    got = json.loads(keystone.openstack("a-member", "secret", "get", href, "-f", "json").stdout)
    assert got["Name"] == name and got["Status"] == "ACTIVE"
    payload = keystone.openstack("a-member", "secret", "get", href, "--payload", "-f", "value").stdout
    assert payload.strip() == "cli-s3cr3t"
    listed = json.loads(keystone.openstack("a-member", "secret", "list", "-n", name, "-f", "json").stdout)
    assert [s["Secret href"] for s in listed] == [href]
    # Another project's member: not found.
    denied = keystone.openstack("b-member", "secret", "get", href, check=False)
    assert denied.returncode != 0 and "Not Found: Secret not found." in denied.stderr
    keystone.openstack("a-member", "secret", "delete", href)
    gone = keystone.openstack("a-member", "secret", "get", href, check=False)
    assert gone.returncode != 0 and "Not Found" in gone.stderr


def test_openstack_cli_order_container_and_acl(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    out = keystone.openstack(
        "a-member", "secret", "order", "create", "key", "--algorithm", "aes", "--bit-length", "256", "-f", "json"
    )
    order_href = json.loads(out.stdout)["Order href"]
    deadline = time.monotonic() + 30
    order: dict[str, Any] = {}
    while time.monotonic() < deadline:
        order = json.loads(keystone.openstack("a-member", "secret", "order", "get", order_href, "-f", "json").stdout)
        if order["Status"] in ("ACTIVE", "ERROR"):
            break
        time.sleep(0.5)
    assert order["Status"] == "ACTIVE", order
    key_href = order["Secret href"]

    out = keystone.openstack(
        "a-member",
        "secret",
        "container",
        "create",
        "--name",
        "ks-box",
        "--type",
        "generic",
        "--secret",
        f"key={key_href}",
        "-f",
        "json",
    )
    container = json.loads(out.stdout)
    assert container["Name"] == "ks-box" and key_href in container["Secrets"]

    acl_user = keystone.users["acl-user"]
    # Before the ACL, the other project's user does not see the key at all.
    assert keystone.openstack("acl-user", "secret", "get", key_href, check=False).returncode != 0
    keystone.openstack("a-member", "acl", "user", "add", "-u", acl_user.id, key_href)
    acls = json.loads(keystone.openstack("a-member", "acl", "get", key_href, "-f", "json").stdout)
    assert [a for a in acls if a["Operation Type"] == "read"][0]["Users"] == [acl_user.id]
    got = json.loads(keystone.openstack("acl-user", "secret", "get", key_href, "-f", "json").stdout)
    assert got["Secret type"] == "symmetric"


def test_castellan_key_manager_with_keystone_password(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    from castellan.common.credentials import keystone_password
    from castellan.common.objects import passphrase
    from castellan.key_manager import barbican_key_manager
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], project="donjon-castellan-test", default_config_files=[], default_config_dirs=[])
    manager = barbican_key_manager.BarbicanKeyManager(conf)
    conf.set_override("auth_endpoint", keystone.url, group="barbican")
    conf.set_override("barbican_endpoint_type", "public", group="barbican")
    user = keystone.users["a-member"]
    context = keystone_password.KeystonePassword(
        password=user.password,
        auth_url=keystone.url,
        username=user.name,
        user_domain_name="Default",
        project_name=user.project,
        project_domain_name="Default",
    )
    key_id = manager.create_key(context, algorithm="AES", length=256, name="castellan-ks")
    key = manager.get(context, key_id)
    assert len(key.get_encoded()) == 32
    stored = manager.store(context, passphrase.Passphrase(b"castellan-pw", name="pw"))
    assert manager.get(context, stored).get_encoded() == b"castellan-pw"
    manager.delete(context, stored)
    manager.delete(context, key_id)
    from castellan.common import exception

    with pytest.raises(exception.ManagedObjectNotFoundError):
        manager.get(context, key_id)


# ---- failure modes and secrecy ----


def test_keystone_unreachable_is_503_not_401(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from donjon.api.app import create_app
    from donjon.config import KeystoneConfig, KeystoreConfig, Settings
    from tests.live_server import free_port

    settings = Settings(
        auth="keystone",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path,
        keystore=KeystoreConfig(type="file", options={"path": str(tmp_path / "root.key")}),
        keystone=KeystoneConfig(auth_url=f"http://127.0.0.1:{free_port()}/v3", password="pw", timeout=2),
    )
    from donjon.storage import migrate
    from donjon.storage.database import Database

    db = Database(settings.effective_database_url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/secrets", headers={"X-Auth-Token": "gAAAAAB" + "t" * 100})
        assert r.status_code == 503
        assert r.json()["description"] == "The authentication service is unavailable. Please try again later."
        assert client.get("/v1/secrets").status_code == 401  # no token: no need to ask Keystone


def test_wrong_service_credentials_are_unavailable_not_unauthorized(keystone: Keystone) -> None:
    from donjon.auth.keystone import KeystoneTokens, KeystoneUnavailable
    from donjon.config import KeystoneConfig

    service = keystone.users["donjon-service"]
    config = KeystoneConfig(
        auth_url=keystone.url, username=service.name, password="wrong", project_name=service.project or ""
    )
    tokens = KeystoneTokens(config)
    with pytest.raises(KeystoneUnavailable):
        tokens.validate(keystone.token("a-member"))
    assert "wrong" not in repr(config) and "wrong" not in repr(tokens)


def test_caller_from_token_scopes() -> None:
    from donjon.auth.keystone import caller_from_token
    from donjon.errors import Unauthorized

    roles = [{"name": "Member"}, {"name": "reader"}]
    caller = caller_from_token({"token": {"user": {"id": "u"}, "project": {"id": "p"}, "roles": roles}})
    assert (caller.project_id, caller.user_id, caller.roles, caller.system_scope) == (
        "p",
        "u",
        ("member", "reader"),
        None,
    )
    system = caller_from_token({"token": {"user": {"id": "u"}, "system": {"all": True}, "roles": roles}})
    assert (system.project_id, system.system_scope) == ("", "all")
    for body in ({"token": {"user": {"id": "u"}, "domain": {"id": "d"}}}, {"token": {"user": {"id": "u"}}}):
        with pytest.raises(Unauthorized):
            caller_from_token(body)


def test_no_token_or_password_in_the_server_log(keystone_donjon: LiveServer, keystone: Keystone) -> None:
    """Runs after the tests above in this module: everything they sent went through this server."""
    log = keystone_donjon.log.read_text()
    for (user, scope), token in keystone._tokens.items():
        assert token not in log, f"{user}/{scope} token in the server log"
        assert token[:40] not in log
    for user in keystone.users.values():
        assert user.password not in log
