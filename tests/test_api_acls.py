"""ACLs (spec §7) and who may do what with them: one table of expected outcomes, checked cell by cell."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import BASE, Api


def test_acl_lifecycle(api: Api) -> None:
    sid = api.create_secret(name="s")
    assert api.get(f"/v1/secrets/{sid}/acl").json() == {"read": {"project-access": True}}
    r = api.put(f"/v1/secrets/{sid}/acl", json={"read": {"users": ["u1", "u2"], "project-access": False}})
    assert (r.status_code, r.json()) == (200, {"acl_ref": f"{BASE}/v1/secrets/{sid}/acl"})
    read = api.get(f"/v1/secrets/{sid}/acl").json()["read"]
    assert (read["users"], read["project-access"]) == (["u1", "u2"], False)
    assert set(read) == {"users", "project-access", "created", "updated"}
    api.request("PATCH", f"/v1/secrets/{sid}/acl", json={"read": {"users": ["u3"]}})
    read = api.get(f"/v1/secrets/{sid}/acl").json()["read"]
    assert (read["users"], read["project-access"]) == (["u3"], False), "PATCH keeps what it does not name"
    api.put(f"/v1/secrets/{sid}/acl", json={"read": {"users": ["u4"]}})
    read = api.get(f"/v1/secrets/{sid}/acl").json()["read"]
    assert (read["users"], read["project-access"]) == (["u4"], True), "PUT replaces, with defaults"
    r = api.delete(f"/v1/secrets/{sid}/acl")
    assert (r.status_code, r.content) == (200, b"null")
    assert api.get(f"/v1/secrets/{sid}/acl").json() == {"read": {"project-access": True}}


@pytest.mark.parametrize(
    "body",
    [
        {"write": {"users": []}},
        {"read": {"groups": []}},
        {"read": {"users": "u1"}},
        {"read": {"users": ["ok", 5]}},
        {"read": {"users": ["ok", "x" * 256]}},
        {"read": {"project-access": "no"}},
    ],
)
def test_invalid_acls(api: Api, body: dict[str, object]) -> None:
    sid = api.create_secret(name="s")
    assert api.put(f"/v1/secrets/{sid}/acl", json=body).status_code == 400
    assert api.get(f"/v1/secrets/{sid}/acl").json() == {"read": {"project-access": True}}


def test_container_acl(api: Api) -> None:
    cid = api.post("/v1/containers", json={"type": "generic"}).json()["container_ref"].rsplit("/", 1)[1]
    r = api.put(f"/v1/containers/{cid}/acl", json={"read": {"users": ["x"]}})
    assert r.json() == {"acl_ref": f"{BASE}/v1/containers/{cid}/acl"}
    assert api.get(f"/v1/containers/{cid}/acl").json()["read"]["users"] == ["x"]


# --- the matrix ----------------------------------------------------------------------------------------
# Callers: relative to a secret and a container created by "creator" (a member) in project P.
CALLERS: dict[str, tuple[str, str, str]] = {  # name -> (project, user, roles)
    "admin": ("P", "boss", "admin"),
    "creator": ("P", "creator", "member"),
    "member": ("P", "colleague", "member"),
    "reader": ("P", "watcher", "reader"),
    "no_role": ("P", "nobody", "_member_x"),
    "acl_user": ("Q", "friend", "member"),
    "stranger": ("Q", "stranger", "member"),
}
OPS = [
    "get",
    "payload",
    "meta_get",
    "consumer_post",
    "acl_get",
    "acl_put",
    "delete",
    "container_get",
    "container_delete",
]
# Expected status per caller, for project-access true / false. 2 = success (200/201/204), 3 = 403, 4 = 404.
MATRIX: dict[tuple[str, bool], list[int]] = {
    ("admin", True): [2, 2, 2, 2, 2, 2, 2, 2, 2],
    ("admin", False): [2, 2, 2, 2, 2, 2, 2, 2, 2],
    ("creator", True): [2, 2, 2, 2, 2, 2, 2, 2, 2],
    ("creator", False): [2, 2, 2, 2, 2, 2, 2, 2, 2],
    ("member", True): [2, 2, 2, 2, 2, 2, 2, 2, 2],
    ("member", False): [3, 3, 3, 3, 3, 3, 3, 3, 3],
    ("reader", True): [3, 3, 3, 3, 3, 3, 3, 3, 3],
    ("reader", False): [3, 3, 3, 3, 3, 3, 3, 3, 3],
    ("no_role", True): [3, 3, 3, 3, 3, 3, 3, 3, 3],
    ("no_role", False): [3, 3, 3, 3, 3, 3, 3, 3, 3],
    ("acl_user", True): [2, 2, 2, 2, 3, 3, 3, 2, 3],
    ("acl_user", False): [2, 2, 2, 2, 3, 3, 3, 2, 3],
    ("stranger", True): [4, 4, 4, 4, 4, 4, 4, 4, 4],
    ("stranger", False): [4, 4, 4, 4, 4, 4, 4, 4, 4],
}
STATUS_CLASS = {200: 2, 201: 2, 204: 2, 403: 3, 404: 4}


def _as(api: Api, project: str, user: str, roles: str, projects: dict[str, str]) -> Api:
    caller = Api(api.client, projects[project], user)
    caller.headers = lambda extra=None: {  # type: ignore[method-assign]
        "X-Project-Id": projects[project],
        "X-User-Id": user,
        "X-Roles": roles,
        **(extra or {}),
    }
    return caller


def _operation(name: str, sid: str, cid: str) -> Callable[[Api], Any]:
    consumer = {"service": "s", "resource_type": "t", "resource_id": str(uuid.uuid4())}
    return {
        "get": lambda a: a.get(f"/v1/secrets/{sid}"),
        "payload": lambda a: a.get(f"/v1/secrets/{sid}/payload"),
        "meta_get": lambda a: a.get(f"/v1/secrets/{sid}/metadata"),
        "consumer_post": lambda a: a.post(f"/v1/secrets/{sid}/consumers", json=consumer),
        "acl_get": lambda a: a.get(f"/v1/secrets/{sid}/acl"),
        "acl_put": lambda a: a.request("PATCH", f"/v1/secrets/{sid}/acl", json={"read": {"users": ["friend"]}}),
        "delete": lambda a: a.delete(f"/v1/secrets/{sid}"),
        "container_get": lambda a: a.get(f"/v1/containers/{cid}"),
        "container_delete": lambda a: a.delete(f"/v1/containers/{cid}"),
    }[name]


@pytest.mark.parametrize("project_access", [True, False])
@pytest.mark.parametrize("caller", list(CALLERS))
def test_acl_matrix(api: Api, caller: str, project_access: bool) -> None:
    projects = {"P": f"P-{uuid.uuid4()}", "Q": f"Q-{uuid.uuid4()}"}
    creator = _as(api, "P", "creator", "member", projects)
    got = []
    for op in OPS:
        # Fresh resources per cell, so that deletes do not affect the next operation.
        sid = creator.create_secret(name="m", payload="v", payload_content_type="text/plain")
        cid = creator.post("/v1/containers", json={"type": "generic"}).json()["container_ref"].rsplit("/", 1)[1]
        acl = {"read": {"users": ["friend"], "project-access": project_access}}
        assert creator.put(f"/v1/secrets/{sid}/acl", json=acl).status_code == 200
        assert creator.put(f"/v1/containers/{cid}/acl", json=acl).status_code == 200
        response = _operation(op, sid, cid)(_as(api, *CALLERS[caller], projects))
        got.append(STATUS_CLASS.get(response.status_code, response.status_code))
    assert dict(zip(OPS, got, strict=True)) == dict(zip(OPS, MATRIX[(caller, project_access)], strict=True))


def test_acl_only_lists_shared_secrets_across_projects(api: Api) -> None:
    user = f"friend-{uuid.uuid4()}"
    shared = api.create_secret(name="shared")
    api.create_secret(name="not shared")
    api.put(f"/v1/secrets/{shared}/acl", json={"read": {"users": [user]}})
    friend = Api(api.client, f"Q-{uuid.uuid4()}", user)
    listed = friend.get("/v1/secrets?acl_only=true").json()
    assert [s["name"] for s in listed["secrets"]] == ["shared"]
    assert friend.get("/v1/secrets").json()["total"] == 0


def test_private_secrets_are_listed_to_creator_and_admins_only(api: Api) -> None:
    project = f"P-{uuid.uuid4()}"

    def caller(user: str, roles: str) -> Api:
        a = Api(api.client, project, user)
        a.headers = lambda extra=None: {
            "X-Project-Id": project,
            "X-User-Id": user,
            "X-Roles": roles,  # type: ignore[method-assign]
            **(extra or {}),
        }
        return a

    creator = caller("creator", "member")
    private = creator.create_secret(name="private")
    creator.create_secret(name="open")
    creator.put(f"/v1/secrets/{private}/acl", json={"read": {"project-access": False}})
    names = lambda a: sorted(s["name"] for s in a.get("/v1/secrets").json()["secrets"])  # noqa: E731
    assert names(creator) == ["open", "private"]
    assert names(caller("boss", "admin")) == ["open", "private"]
    assert names(caller("colleague", "member")) == ["open"]
