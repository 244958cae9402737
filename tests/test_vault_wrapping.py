"""Response wrapping on donjon's wrap tokens: X-Vault-Wrap-TTL, sys/wrapping/unwrap, wrap and rewrap."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

INVALID = {"errors": ["wrapping token is not valid or does not exist"]}


@pytest.fixture
def token() -> str:
    return f"wrap-{uuid.uuid4()}"  # dev mode: the token names a fresh project


def test_a_wrapped_kv_read_unwraps_once(app_client: TestClient, token: str) -> None:
    h = {"X-Vault-Token": token}
    app_client.post("/v1/secret/data/wrapme", headers=h, json={"data": {"k": "v"}})
    r = app_client.get("/v1/secret/data/wrapme", headers={**h, "X-Vault-Wrap-TTL": "2m"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] is None and body["request_id"] == ""
    info = body["wrap_info"]
    assert list(info) == ["token", "accessor", "ttl", "creation_time", "creation_path"]
    assert info["ttl"] == 120 and info["creation_path"] == "secret/data/wrapme"
    assert "v" not in r.text.replace(info["token"], "")  # the data is not in the answer
    # The wrapped answer is a limited secret of the project, visible while it waits.
    listed = app_client.get("/v1/secrets?name=vault-wrap:secret/data/wrapme", headers={"X-Project-Id": token})
    assert listed.json()["total"] == 1
    # Unwrapped with the wrapping token itself, no body.
    unwrapped = app_client.put("/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": info["token"]})
    assert unwrapped.status_code == 200, unwrapped.text
    assert unwrapped.json()["data"]["data"] == {"k": "v"} and unwrapped.json()["request_id"]
    again = app_client.put("/v1/sys/wrapping/unwrap", headers=h, json={"token": info["token"]})
    assert (again.status_code, again.json()) == (400, INVALID)
    listed = app_client.get("/v1/secrets?name=vault-wrap:secret/data/wrapme", headers={"X-Project-Id": token})
    assert listed.json()["total"] == 0  # spent: the secret went with its one read


def test_wrap_rewrap_and_unwrap_with_a_body_token(app_client: TestClient, token: str) -> None:
    h = {"X-Vault-Token": token}
    r = app_client.post("/v1/sys/wrapping/wrap", headers={**h, "X-Vault-Wrap-TTL": "60"}, json={"a": 1, "b": "x"})
    first = r.json()["wrap_info"]
    assert first["creation_path"] == "sys/wrapping/wrap"
    rewrapped = app_client.post("/v1/sys/wrapping/rewrap", headers=h, json={"token": first["token"]}).json()
    second = rewrapped["wrap_info"]
    assert second["token"] != first["token"] and second["creation_path"] == "sys/wrapping/wrap"
    assert second["ttl"] == 60
    stale = app_client.post("/v1/sys/wrapping/unwrap", headers=h, json={"token": first["token"]})
    assert (stale.status_code, stale.json()) == (400, INVALID)
    unwrapped = app_client.post("/v1/sys/wrapping/unwrap", headers=h, json={"token": second["token"]})
    assert unwrapped.json()["data"] == {"a": 1, "b": "x"}


def test_wrapping_errors(app_client: TestClient, token: str) -> None:
    h = {"X-Vault-Token": token}
    r = app_client.post("/v1/sys/wrapping/wrap", headers=h, json={"a": 1})
    assert (r.status_code, r.json()) == (400, {"errors": ["endpoint requires response wrapping to be used"]})
    r = app_client.get("/v1/secret/data/x", headers={**h, "X-Vault-Wrap-TTL": "abc"})
    expected = {"errors": ['error parsing X-Vault-Wrap-TTL header: time: invalid duration "abc"']}
    assert (r.status_code, r.json()) == (400, expected)
    r = app_client.post("/v1/sys/wrapping/unwrap", headers=h, json={"token": "djw_nope"})
    assert (r.status_code, r.json()) == (400, INVALID)
    r = app_client.get("/v1/sys/mounts", headers={**h, "X-Vault-Wrap-TTL": "100000"})
    assert (r.status_code, r.json()) == (
        400,
        {"errors": ["wrapping TTL is longer than the largest allowed (86400 seconds)"]},
    )
    # An error is never wrapped.
    r = app_client.get("/v1/secret/data/missing", headers={**h, "X-Vault-Wrap-TTL": "60s"})
    assert (r.status_code, r.json()) == (404, {"errors": []})
    # Another project's token cannot unwrap by body without being a valid caller, and a wrong token is refused.
    r = app_client.post("/v1/sys/wrapping/unwrap", json={"token": "djw_x"})
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})


def test_lookup_needs_no_token_and_spends_nothing(app_client: TestClient, token: str) -> None:
    h = {"X-Vault-Token": token}
    app_client.post("/v1/secret/data/looked", headers=h, json={"data": {"k": "v"}})
    wrap = app_client.get("/v1/secret/data/looked", headers={**h, "X-Vault-Wrap-TTL": "120s"}).json()["wrap_info"]
    by_post = app_client.post("/v1/sys/wrapping/lookup", json={"token": wrap["token"]})
    assert by_post.status_code == 200, by_post.text
    data = by_post.json()["data"]
    assert list(data) == ["creation_path", "creation_time", "creation_ttl"]
    assert data["creation_path"] == "secret/data/looked" and data["creation_ttl"] == 120
    assert data["creation_time"] == wrap["creation_time"]
    # Not in a URL, where access logs and proxies keep it.
    assert app_client.get(f"/v1/sys/wrapping/lookup?token={wrap['token']}").status_code == 405
    assert app_client.post("/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": wrap["token"]}).status_code == 200
    spent = app_client.post("/v1/sys/wrapping/lookup", json={"token": wrap["token"]})
    assert (spent.status_code, spent.json()) == (400, INVALID)
