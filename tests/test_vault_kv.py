"""KV v2 over donjon secrets: one store seen from both APIs, Barbican's policy, and bad input as Vault's 400."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from donjon.config import Settings
from tests.live_server import expire_in_database


class Kv:
    """A dev-mode Vault client of one project (the token names it)."""

    def __init__(self, client: TestClient, project: str | None = None, roles: str | None = None) -> None:
        self.client = client
        self.project = project or f"kv-{uuid.uuid4()}"
        self.headers = {"X-Vault-Token": self.project}
        if roles is not None:
            self.headers |= {"X-Project-Id": self.project, "X-Roles": roles}

    def __call__(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        return self.client.request(method, f"/v1/secret/{path}", headers=self.headers | headers, json=body)

    def barbican(self, method: str, path: str, accept: str | None = None) -> Any:
        headers = {"X-Project-Id": self.project} | ({"Accept": accept} if accept else {})
        return self.client.request(method, path, headers=headers)


@pytest.fixture
def kv(app_client: TestClient) -> Kv:
    return Kv(app_client)


def test_a_kv_secret_is_a_barbican_secret(kv: Kv) -> None:
    assert kv("POST", "data/app/db", {"data": {"user": "admin", "n": 1}}).status_code == 200
    listed = kv.barbican("GET", "/v1/secrets?name=app/db").json()
    assert listed["total"] == 1
    ref = listed["secrets"][0]["secret_ref"]
    payload = kv.barbican("GET", f"/v1{ref.split('/v1', 1)[1]}/payload", "text/plain")
    assert payload.json() == {"user": "admin", "n": 1}
    # Deleted through Barbican: gone from KV.
    assert kv.barbican("DELETE", "/v1" + ref.split("/v1", 1)[1]).status_code == 204
    assert (kv("GET", "data/app/db").status_code, kv("GET", "metadata/app/db").status_code) == (404, 404)


def test_deleting_the_key_deletes_the_secret(kv: Kv) -> None:
    kv("POST", "data/gone", {"data": {"a": "b"}})
    assert kv.barbican("GET", "/v1/secrets?name=gone").json()["total"] == 1
    assert kv("DELETE", "metadata/gone").status_code == 204
    assert kv.barbican("GET", "/v1/secrets?name=gone").json()["total"] == 0


def test_destroying_the_current_version_leaves_barbican_no_payload(kv: Kv) -> None:
    kv("POST", "data/d", {"data": {"a": "b"}})
    ref = kv.barbican("GET", "/v1/secrets?name=d").json()["secrets"][0]["secret_ref"].split("/v1", 1)[1]
    ref = "/v1" + ref
    assert kv("PUT", "destroy/d", {"versions": ["1"]}).status_code == 204
    assert kv.barbican("GET", f"{ref}/payload", "text/plain").status_code == 404
    r = kv("GET", "data/d")
    assert r.status_code == 404 and r.json()["data"]["metadata"]["destroyed"] is True
    assert kv("POST", "data/d", {"data": {"a": "c"}}).json()["data"]["version"] == 2


def test_another_project_sees_nothing(kv: Kv, app_client: TestClient) -> None:
    kv("POST", "data/mine", {"data": {"a": "b"}})
    other = Kv(app_client)
    assert (other("GET", "data/mine").status_code, other("GET", "data/mine").json()) == (404, {"errors": []})
    assert other("GET", "metadata", **{"X-Vault-Request": "true"}).status_code in (404, 405)
    assert other("LIST", "metadata").status_code == 404
    mine = other("POST", "data/mine", {"data": {"x": "y"}})
    assert mine.status_code == 200, mine.text
    assert mine.json()["data"]["version"] == 1  # its own key
    assert kv("GET", "data/mine").json()["data"]["data"] == {"a": "b"}


@pytest.mark.parametrize("roles", ["reader", "member", "audit"])
def test_barbican_policy_decides_as_for_the_same_operations(kv: Kv, app_client: TestClient, roles: str) -> None:
    kv("POST", "data/r", {"data": {"a": "b"}})
    ref = "/v1" + kv.barbican("GET", "/v1/secrets?name=r").json()["secrets"][0]["secret_ref"].split("/v1", 1)[1]
    vault = Kv(app_client, kv.project, roles=roles)
    barbican = {"X-Project-Id": kv.project, "X-Roles": roles, "Accept": "text/plain"}
    pairs = [(("GET", "metadata/r"), ref), (("GET", "data/r"), f"{ref}/payload"), (("LIST", "metadata"), "/v1/secrets")]
    for (method, path), barbican_path in pairs:
        theirs = app_client.get(barbican_path, headers=barbican).status_code
        ours = vault(method, path)
        assert (ours.status_code == 403) == (theirs == 403), (roles, path, ours.status_code, theirs)
        if ours.status_code == 403:
            assert ours.json() == {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
    wrote = vault("POST", "data/r", {"data": {"a": "c"}}).status_code
    assert wrote == (200 if roles == "member" else 403)


def test_a_read_decides_on_the_path_as_barbican_on_the_secret(
    kv: Kv, app_client: TestClient, settings: Settings
) -> None:
    """A KV read finds the path's secret and its ACL facts in one query (storage/kv.secret_at_path): no entry is
    403 to a role that may not read and 404 to one that may; a private secret is 403 to another member; a path
    whose secret has expired is 404 to both, as an expired secret is through Barbican."""
    audit = Kv(app_client, kv.project, roles="audit")
    assert (kv("GET", "data/absent").status_code, audit("GET", "data/absent").status_code) == (404, 403)

    alice = Kv(app_client, kv.project, roles="member")
    alice.headers["X-User-Id"] = "alice"
    bob = Kv(app_client, kv.project, roles="member")
    bob.headers["X-User-Id"] = "bob"
    assert alice("POST", "data/private", {"data": {"a": "b"}}).status_code == 200
    listed = kv.barbican("GET", "/v1/secrets?name=private").json()["secrets"][0]
    ref = "/v1" + listed["secret_ref"].split("/v1", 1)[1]
    acl = {"read": {"project-access": False, "users": []}}
    assert app_client.put(f"{ref}/acl", headers=alice.headers, json=acl).status_code == 200
    assert (alice("GET", "data/private").status_code, bob("GET", "data/private").status_code) == (200, 403)

    assert kv("POST", "data/expired", {"data": {"a": "b"}}).status_code == 200
    secret_id = kv.barbican("GET", "/v1/secrets?name=expired").json()["secrets"][0]["secret_ref"].rsplit("/", 1)[1]
    expire_in_database(settings.database_url, secret_id)
    assert (kv("GET", "data/expired").status_code, audit("GET", "data/expired").status_code) == (404, 404)


def test_list_shows_folders_and_both_list_forms(kv: Kv) -> None:
    for path in ("a/b/c", "a/d", "e"):
        kv("PUT", f"data/{path}", {"data": {}})
    assert kv("LIST", "metadata").json()["data"]["keys"] == ["a/", "e"]
    assert kv("GET", "metadata/a/?list=true").json()["data"]["keys"] == ["b/", "d"]
    assert kv("GET", "metadata/a?list=true").json()["data"]["keys"] == ["b/", "d"]
    assert kv("LIST", "data/a").status_code == 405


def test_values_keep_their_json_types_and_patch_merges(kv: Kv) -> None:
    doc = {"s": "x", "n": 1.5, "l": [1, "2"], "o": {"k": True}, "z": None}
    kv("POST", "data/t", {"data": doc})
    assert kv("GET", "data/t").json()["data"]["data"] == {k: doc[k] for k in sorted(doc)}
    r = kv(
        "PATCH",
        "data/t",
        {"data": {"o": {"k": None, "j": 2}, "s": None}},
        **{"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["data"]["version"] == 2
    assert kv("GET", "data/t").json()["data"]["data"] == {"l": [1, "2"], "n": 1.5, "o": {"j": 2}, "z": None}
    assert kv("GET", "data/t?version=1").json()["data"]["data"]["s"] == "x"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "data/x", {"data": [1]}, 400, 'error converting input for field "data"'),
        ("POST", "data/x", {"data": {}, "options": {"cas": "z"}}, 400, "cas must be an integer"),
        ("POST", "metadata/x", {"max_versions": "many"}, 400, "max_versions"),
        ("POST", "metadata/x", {"delete_version_after": "soon"}, 400, 'time: invalid duration "soon"'),
        ("POST", "metadata/x", {"custom_metadata": {"a": 1}}, 400, "custom_metadata"),
        ("POST", "delete/x", {"versions": ["one"]}, 400, "versions"),
        ("GET", "data/x?version=-", None, 400, "Field validation failed"),
        ("POST", f"data/{'p' * 300}", {"data": {}}, 400, "path is longer than 255"),
    ],
)
def test_bad_input_is_vaults_400(kv: Kv, method: str, path: str, body: Any, status: int, message: str) -> None:
    r = kv(method, path, body)
    assert r.status_code == status, r.text
    assert message in r.json()["errors"][0]


def test_an_oversize_document_is_refused_without_a_500(kv: Kv) -> None:
    r = kv("POST", "data/big", {"data": {"v": "x" * 22_000}})
    assert r.status_code in (400, 413) and r.json()["errors"]


def test_a_version_written_through_barbican_that_is_not_json_is_a_400(kv: Kv, app_client: TestClient) -> None:
    kv("POST", "data/mixed", {"data": {"a": "b"}})
    ref = "/v1" + kv.barbican("GET", "/v1/secrets?name=mixed").json()["secrets"][0]["secret_ref"].split("/v1", 1)[1]
    body = {"payload": "plain words", "payload_content_type": "text/plain"}
    created = app_client.post(f"{ref}/versions", headers={"X-Project-Id": kv.project}, json=body)
    assert created.status_code in (200, 201), created.text
    r = kv("GET", "data/mixed")
    assert r.status_code == 400 and "not a KV document" in r.json()["errors"][0]
    assert "plain words" not in r.text
    assert kv("GET", "data/mixed?version=1").json()["data"]["data"] == {"a": "b"}
    assert kv("POST", "data/mixed", {"data": {"a": "c"}}).json()["data"]["version"] == 3


def test_concurrent_writes_of_a_new_key_each_get_their_own_version(app_client: TestClient) -> None:
    """First writes race on the key's creation (unique path per project), later ones on the version."""
    from concurrent.futures import ThreadPoolExecutor

    from donjon.auth import Caller

    kv_service = app_client.app.state.ctx.kv  # type: ignore[attr-defined]
    caller = Caller(project_id=f"race-{uuid.uuid4()}", roles=("admin",))
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda n: kv_service.write(caller, "raced", {"n": n}, None).version, range(6)))
    assert sorted(made) == [1, 2, 3, 4, 5, 6]
    assert kv_service.metadata(caller, "raced").current_version == 6
