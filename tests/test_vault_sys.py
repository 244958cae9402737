"""The Vault API's sys/ paths, routing and error shapes, against OpenBao 2.7.2's captured answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

CAPTURES = Path("/work/shared/spec/vault-captures")
TOKEN = {"X-Vault-Token": "vault-sys-project"}  # dev mode: the token names the project
ENVELOPE = ["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"]


def captured(area: str, title: str) -> dict[str, Any] | None:
    """A captured OpenBao exchange, when the captures are on this machine."""
    path = CAPTURES / f"{area}.json"
    if not path.exists():
        return None
    for exchange in json.loads(path.read_text()):
        if exchange["title"] == title:
            return dict(exchange["response"])
    raise AssertionError(f"no capture {title!r} in {area}")


def same_shape(ours: Any, theirs: Any) -> None:
    """Equal key sets (in order) and JSON types, recursively (a ``<placeholder>`` string stands for any value)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), ours
        assert list(ours) == list(theirs), (list(ours), list(theirs))
        for key in theirs:
            same_shape(ours[key], theirs[key])
    elif isinstance(theirs, list):
        assert isinstance(ours, list)
    elif theirs is None:
        assert ours is None, ours
    elif isinstance(theirs, bool):
        assert isinstance(ours, bool), ours
    else:
        assert isinstance(ours, type(theirs)) or (isinstance(theirs, str) and theirs.startswith("<")), (ours, theirs)


def test_health_is_unauthenticated_and_active(app_client: TestClient) -> None:
    r = app_client.get("/v1/sys/health")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["initialized"] is True and body["sealed"] is False and body["standby"] is False
    theirs = captured("sys-health", "GET sys/health (active, unsealed)")
    if theirs is not None:
        theirs["body"]["server_time_utc"] = 0
        same_shape(body, theirs["body"])
    assert app_client.get("/v1/sys/health?activecode=299").status_code == 299
    assert app_client.get("/v1/sys/health?standbyok=true&perfstandbyok=true").status_code == 200
    head = app_client.head("/v1/sys/health")
    assert head.status_code == 200 and head.content == b""


def test_health_refuses_a_bad_code_with_400(app_client: TestClient) -> None:
    r = app_client.get("/v1/sys/health?activecode=abc")
    assert r.status_code == 400 and r.json()["errors"]


def test_seal_status_and_leader(app_client: TestClient) -> None:
    body = app_client.get("/v1/sys/seal-status").json()
    theirs = captured("sys-misc", "GET sys/seal-status")
    if theirs is not None:
        same_shape(body, theirs["body"])
    assert body["sealed"] is False and body["type"] == "shamir"
    assert app_client.get("/v1/sys/leader").json() == {"ha_enabled": False}


def test_mounts_need_a_token(app_client: TestClient) -> None:
    for path in ("/v1/sys/mounts", "/v1/sys/internal/ui/mounts/secret/x"):
        r = app_client.get(path)
        assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})


def test_ui_mounts_outside_any_mount_is_the_preflight_403(app_client: TestClient) -> None:
    r = app_client.get("/v1/sys/internal/ui/mounts/nomount/x", headers=TOKEN)
    assert r.status_code == 403
    expected = (
        'preflight capability check returned 403, please ensure client\'s policies grant access to path "nomount/x/"'
    )
    assert r.json() == {"errors": [expected]}


def test_unknown_sys_path_and_operation(app_client: TestClient) -> None:
    r = app_client.get("/v1/sys/doesnotexist", headers=TOKEN)
    assert (r.status_code, r.json()) == (404, {"errors": ["1 error occurred:\n\t* unsupported path\n\n"]})
    r = app_client.delete("/v1/sys/health", headers=TOKEN)
    assert (r.status_code, r.json()) == (405, {"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]})
    r = app_client.request("LIST", "/v1/sys/seal-status", headers=TOKEN)
    assert r.status_code == 405


@pytest.mark.parametrize("path", ["/v1/secrets", "/v1/orders"])
def test_barbican_paths_keep_their_own_errors(app_client: TestClient, path: str) -> None:
    r = app_client.request("PATCH", path, headers={"X-Project-Id": "p"})
    assert r.status_code == 405
    assert set(r.json()) == {"code", "title", "description"}
