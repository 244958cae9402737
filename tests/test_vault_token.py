"""auth/token/* of the Vault API in donjon's token mode, against OpenBao 2.7.2's captured shapes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import Settings
from donjon.errors import DonjonError
from tests.test_vault_sys import captured, same_shape


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"auth": "token"}))) as c:
        yield c


def issue(client: TestClient, roles: list[str], ttl: timedelta | None = timedelta(hours=1)) -> str:
    tokens = client.app.state.ctx.tokens  # type: ignore[attr-defined]
    return str(tokens.issue(project_id=f"p-{uuid.uuid4()}", user_id="u", roles=roles, ttl=ttl).token)


def vault(token: str) -> dict[str, str]:
    return {"X-Vault-Token": token}


def test_lookup_self_by_either_header(client: TestClient) -> None:
    token = issue(client, ["member"])
    for headers in (vault(token), {"Authorization": f"Bearer {token}"}):
        r = client.get("/v1/auth/token/lookup-self", headers=headers)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["id"] == token and data["policies"] == ["default", "member"]
        assert 3590 <= data["ttl"] <= 3600 and data["renewable"] is True
    theirs = captured("token", "lookup-self with X-Vault-Token (root)")
    if theirs is not None:
        body: dict[str, Any] = r.json()
        theirs["body"]["data"].update(
            meta=body["data"]["meta"], expire_time="<timestamp>", creation_ttl=0, ttl=0, policies=[]
        )
        same_shape(body, theirs["body"])


@pytest.mark.parametrize("headers", [{}, {"X-Vault-Token": "s.nope"}, {"X-Vault-Token": "djt_" + "0" * 32 + "_x"}])
def test_without_a_valid_token_it_is_permission_denied(client: TestClient, headers: dict[str, str]) -> None:
    r = client.get("/v1/auth/token/lookup-self", headers=headers)
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})


def test_create_a_child_then_renew_and_revoke_it(client: TestClient) -> None:
    parent = issue(client, ["admin", "member"], ttl=timedelta(hours=2))
    body = {"policies": ["default", "member"], "ttl": "1h0m0s", "display_name": "ci", "num_uses": 0}
    r = client.post("/v1/auth/token/create", headers=vault(parent), json=body)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["data"] is None
    auth = created["auth"]
    assert auth["policies"] == ["default", "member"] and auth["lease_duration"] == 3600
    child = auth["client_token"]
    data = client.get("/v1/auth/token/lookup-self", headers=vault(child)).json()["data"]
    assert data["display_name"] == "token-ci" and data["meta"] == {
        "project_id": data["meta"]["project_id"],
        "user_id": "u",
    }
    assert client.get("/v1/auth/token/lookup-self", headers=vault(parent)).json()["data"]["meta"] == data["meta"]

    renewed = client.put("/v1/auth/token/renew-self", headers=vault(child), json={"increment": "30m"})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["auth"]["lease_duration"] == 1800
    assert client.get("/v1/auth/token/lookup-self", headers=vault(child)).json()["data"]["ttl"] <= 1800

    assert client.post("/v1/auth/token/revoke-self", headers=vault(child)).status_code == 204
    tokens = client.app.state.ctx.tokens  # type: ignore[attr-defined]
    tokens._cache.clear()  # the per-process cache would serve it for token_cache_seconds more
    r = client.get("/v1/auth/token/lookup-self", headers=vault(child))
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})


def test_a_child_gets_no_role_its_parent_lacks(client: TestClient) -> None:
    parent = issue(client, ["reader"])
    r = client.post("/v1/auth/token/create", headers=vault(parent), json={"policies": ["admin"]})
    assert r.status_code == 400 and r.json()["errors"]
    r = client.post("/v1/auth/token/create", headers=vault(parent), json={"policies": ["root"]})
    assert (r.status_code, r.json()) == (403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]})
    inherited = client.post("/v1/auth/token/create", headers=vault(parent), json={}).json()["auth"]
    assert inherited["policies"] == ["default", "reader"]


def test_a_child_never_outlives_its_parent(client: TestClient) -> None:
    parent = issue(client, ["member"], ttl=timedelta(minutes=10))
    r = client.post("/v1/auth/token/create", headers=vault(parent), json={"ttl": "24h"})
    assert r.status_code == 200 and r.json()["auth"]["lease_duration"] <= 600


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ttl": "abc"}, 'time: invalid duration "abc"'),
        ({"num_uses": -1}, "number of uses cannot be negative"),
        ({"num_uses": "three"}, "Error decoding request: cannot parse 'num_uses' as int"),
        ({"num_uses": [3]}, "Error decoding request: cannot parse 'num_uses' as int"),
        ({"policies": 7}, 'error converting input for field "policies": expected a list of policy names'),
    ],
)
def test_bad_create_input_is_400(client: TestClient, body: dict[str, Any], message: str) -> None:
    r = client.post("/v1/auth/token/create", headers=vault(issue(client, ["member"])), json=body)
    assert (r.status_code, r.json()) == (400, {"errors": [message]})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "invalid character 'n' looking for beginning of object key string"),
        (b"[1, 2", "unexpected EOF"),
        (b'"text"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    ],
)
def test_bad_json_is_vaults_400(client: TestClient, raw: bytes, message: str) -> None:
    r = client.post("/v1/auth/token/create", headers=vault(issue(client, ["member"])), content=raw)
    assert (r.status_code, r.json()) == (400, {"errors": [f"failed to decode JSON input: {message}"]})


def test_a_never_expiring_token_is_not_renewable(client: TestClient) -> None:
    r = client.put("/v1/auth/token/renew-self", headers=vault(issue(client, ["member"], ttl=None)))
    assert (r.status_code, r.json()) == (400, {"errors": ["lease is not renewable"]})


def test_lookup_renew_and_revoke_a_token_named_in_the_body(client: TestClient) -> None:
    caller, other = issue(client, ["member"]), issue(client, ["reader"])
    looked = client.post("/v1/auth/token/lookup", headers=vault(caller), json={"token": other})
    assert looked.status_code == 200 and looked.json()["data"]["policies"] == ["default", "reader"]
    renewed = client.put("/v1/auth/token/renew", headers=vault(caller), json={"token": other, "increment": 0})
    assert renewed.status_code == 200 and renewed.json()["auth"]["client_token"] == other
    assert client.put("/v1/auth/token/revoke", headers=vault(caller), json={"token": other}).status_code == 204
    r = client.post("/v1/auth/token/lookup", headers=vault(caller), json={"token": other})
    assert (r.status_code, r.json()) == (403, {"errors": ["bad token"]})
    r = client.post("/v1/auth/token/lookup", headers=vault(caller), json={})
    assert (r.status_code, r.json()) == (400, {"errors": ["missing token"]})
    r = client.post("/v1/auth/token/lookup", json={"token": caller})  # the caller itself must be valid
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})


def test_the_namespace_is_the_tokens_project(client: TestClient) -> None:
    token = issue(client, ["member"])
    project = client.get("/v1/auth/token/lookup-self", headers=vault(token)).json()["data"]["meta"]["project_id"]
    ok = client.get("/v1/auth/token/lookup-self", headers={**vault(token), "X-Vault-Namespace": f"{project}/"})
    assert ok.status_code == 200
    r = client.get("/v1/auth/token/lookup-self", headers={**vault(token), "X-Vault-Namespace": "elsewhere"})
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})


def _use_limited_child(client: TestClient, num_uses: int | str) -> str:
    parent = issue(client, ["member"])
    r = client.post("/v1/auth/token/create", headers=vault(parent), json={"num_uses": num_uses, "ttl": "10m"})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["num_uses"] == int(num_uses)
    return str(r.json()["auth"]["client_token"])


def test_a_use_limited_token_counts_down_then_is_revoked(client: TestClient) -> None:
    child = _use_limited_child(client, "3")  # Vault decodes numeric strings too
    # As Vault: lookup-self reports the uses left after its own, -1 when it spent the last one.
    assert client.get("/v1/auth/token/lookup-self", headers=vault(child)).json()["data"]["num_uses"] == 2
    renewed = client.put("/v1/auth/token/renew-self", headers=vault(child), json={"increment": "5m"})
    assert renewed.status_code == 200 and renewed.json()["auth"]["num_uses"] == 3  # the limit as issued
    last = client.get("/v1/auth/token/lookup-self", headers=vault(child))
    assert last.status_code == 200 and last.json()["data"]["num_uses"] == -1
    theirs = captured("token", "num_uses=1 token: first use")
    if theirs is not None:
        body: dict[str, Any] = last.json()
        theirs["body"]["data"].update(meta=body["data"]["meta"], expire_time="<timestamp>")
        same_shape(body, theirs["body"])
    # Spent, at once and on every node: a use-limited token is never served from the per-process cache.
    r = client.get("/v1/auth/token/lookup-self", headers=vault(child))
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    r = client.post("/v1/auth/token/lookup", headers=vault(issue(client, ["member"])), json={"token": child})
    assert (r.status_code, r.json()) == (403, {"errors": ["bad token"]})


def test_looking_a_use_limited_token_up_by_name_spends_none_of_its_uses(client: TestClient) -> None:
    child = _use_limited_child(client, 2)
    other = issue(client, ["member"])
    for _ in range(3):
        looked = client.post("/v1/auth/token/lookup", headers=vault(other), json={"token": child})
        assert looked.status_code == 200 and looked.json()["data"]["num_uses"] == 2
    assert client.get("/v1/auth/token/lookup-self", headers=vault(child)).json()["data"]["num_uses"] == 1


def test_the_barbican_api_spends_the_same_uses(client: TestClient) -> None:
    child = _use_limited_child(client, 2)
    assert client.get("/v1/secrets", headers={"X-Auth-Token": child}).status_code == 200
    assert client.get("/v1/secret/metadata/?list=true", headers=vault(child)).status_code == 404  # none yet
    assert client.get("/v1/secrets", headers={"X-Auth-Token": child}).status_code == 401


def test_concurrent_requests_spend_each_use_once(client: TestClient) -> None:
    child = _use_limited_child(client, 5)
    tokens = client.app.state.ctx.tokens  # type: ignore[attr-defined]

    def attempt(_: int) -> bool:
        try:
            tokens.authenticate(child)
        except DonjonError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(16)))
    assert results.count(True) == 5


def test_a_use_limited_token_creates_no_children(client: TestClient) -> None:
    child = _use_limited_child(client, 5)
    r = client.post("/v1/auth/token/create", headers=vault(child), json={"num_uses": 1})
    assert (r.status_code, r.json()) == (400, {"errors": ["a use-limited token cannot create child tokens"]})
