"""Quotas (spec §8): the admin API, enforcement per resource, and no over-admission under concurrent creates."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.live_server import LiveServer

REACHED = "Creation not allowed because a quota has been reached."
ADMIN = {"X-Roles": "admin"}


def set_quotas(api: Api, project_id: str, **values: int) -> None:
    r = api.put(f"/v1/project-quotas/{project_id}", json={"project_quotas": values}, headers=ADMIN)
    assert r.status_code == 204, r.text


def test_effective_quotas_default_to_unlimited(api: Api) -> None:
    r = api.get("/v1/quotas", headers={"X-Roles": "reader"})
    assert r.status_code == 200
    assert r.json() == {"quotas": {"secrets": -1, "orders": -1, "containers": -1, "consumers": -1, "cas": -1}}


def test_project_quotas_lifecycle(api: Api) -> None:
    project = api.project_id
    path = f"/v1/project-quotas/{project}"
    r = api.get(path, headers=ADMIN)
    assert r.status_code == 404
    assert r.json()["description"] == "Project quotas not found."

    set_quotas(api, project, secrets=2, containers=0)
    assert api.get(path, headers=ADMIN).json() == {
        "project_quotas": {"secrets": 2, "orders": None, "containers": 0, "consumers": None, "cas": None}
    }
    # A second PUT updates only the keys it names.
    set_quotas(api, project, orders=7)
    assert api.get(path, headers=ADMIN).json()["project_quotas"] == {
        "secrets": 2,
        "orders": 7,
        "containers": 0,
        "consumers": None,
        "cas": None,
    }
    # The project sees the effective values: its overrides, the defaults elsewhere.
    assert api.get("/v1/quotas").json()["quotas"] == {
        "secrets": 2,
        "orders": 7,
        "containers": 0,
        "consumers": -1,
        "cas": -1,
    }
    listed = api.get("/v1/project-quotas", params={"limit": 100}, headers=ADMIN).json()
    assert {"project_id": project, "project_quotas": api.get(path, headers=ADMIN).json()["project_quotas"]} in listed[
        "project_quotas"
    ]
    assert listed["total"] >= 1

    assert api.delete(path, headers=ADMIN).status_code == 204
    assert api.get(path, headers=ADMIN).status_code == 404
    assert api.delete(path, headers=ADMIN).status_code == 404
    assert api.get("/v1/quotas").json()["quotas"]["secrets"] == -1


@pytest.mark.parametrize(
    ("body", "status", "description"),
    [
        (b"", 400, "No data supplied to process."),
        (b"{}", 400, "No data supplied to process."),
        (b'{"project_quotas": {"secrets": "10"}}', 400, "'secrets' must be an integer"),
        (b'{"project_quotas": {"secrets": true}}', 400, "'secrets' must be an integer"),
        (b'{"project_quotas": {"widgets": 1}}', 400, "unknown ['widgets']"),
        (b'{"quotas": {"secrets": 1}}', 400, "'project_quotas' is required"),
        (b"[1]", 400, "'project_quotas' is required"),
    ],
)
def test_bad_project_quota_bodies(api: Api, body: bytes, status: int, description: str) -> None:
    headers = {**ADMIN, "Content-Type": "application/json"}
    r = api.put(f"/v1/project-quotas/{api.project_id}", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert description in r.json()["description"]
    assert api.get(f"/v1/project-quotas/{api.project_id}", headers=ADMIN).status_code == 404, "partial write"


def test_only_admins_manage_project_quotas(api: Api) -> None:
    for role in ("member", "reader"):
        h = {"X-Roles": role}
        assert api.get("/v1/project-quotas", headers=h).status_code == 403
        r = api.put(f"/v1/project-quotas/{api.project_id}", json={"project_quotas": {"secrets": 100}}, headers=h)
        assert r.status_code == 403
        assert api.delete(f"/v1/project-quotas/{api.project_id}", headers=h).status_code == 403


def test_unsupported_quota_methods(api: Api) -> None:
    assert api.put("/v1/quotas", json={}).status_code == 405
    assert api.post(f"/v1/project-quotas/{api.project_id}", json={}, headers=ADMIN).status_code == 405


def test_secret_quota_is_enforced_and_freed_by_deletion(api: Api) -> None:
    set_quotas(api, api.project_id, secrets=2)
    first = api.create_secret(payload="a", payload_content_type="text/plain")
    api.create_secret(name="metadata only")
    r = api.post("/v1/secrets", json={"payload": "c", "payload_content_type": "text/plain"})
    assert (r.status_code, r.json()["description"]) == (403, REACHED)
    assert api.get("/v1/secrets").json()["total"] == 2
    # Another project is not affected.
    assert api.other_project().post("/v1/secrets", json={"name": "x"}).status_code == 201
    assert api.delete(f"/v1/secrets/{first}").status_code == 204
    assert api.post("/v1/secrets", json={"name": "now fits"}).status_code == 201


def test_zero_disables_a_resource(api: Api) -> None:
    set_quotas(api, api.project_id, containers=0, orders=0)
    r = api.post("/v1/containers", json={"type": "generic", "name": "c"})
    assert (r.status_code, r.json()["description"]) == (403, REACHED)
    r = api.post("/v1/orders", json={"type": "key", "meta": {"algorithm": "aes", "bit_length": 128}})
    assert (r.status_code, r.json()["description"]) == (403, REACHED)


def test_secret_and_container_consumers_are_counted_separately(api: Api) -> None:
    set_quotas(api, api.project_id, consumers=1)
    secret = api.create_secret(name="s")
    container = api.post("/v1/containers", json={"type": "generic", "name": "c"}).json()["container_ref"]
    consumer = {"service": "nova", "resource_type": "instance", "resource_id": "vm-1"}
    assert api.post(f"/v1/secrets/{secret}/consumers", json=consumer).status_code == 200
    # Container consumers are Barbican's older {name, URL} form.
    assert api.post(f"{container}/consumers", json={"name": "lb", "URL": "http://lb/1"}).status_code == 200
    second = {**consumer, "resource_id": "vm-2"}
    assert api.post(f"/v1/secrets/{secret}/consumers", json=second).status_code == 403
    assert api.post(f"{container}/consumers", json={"name": "lb", "URL": "http://lb/2"}).status_code == 403


# --- concurrent creates at the quota edge, against a real server with two worker processes, per database ---


@pytest.fixture(scope="module")
def race_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("quota-race"), workers=2, env={"DONJON_DATABASE_URL": database_url})
    server.start()
    yield server
    server.stop()


def burst(
    server: LiveServer, project: str, make: Callable[[httpx.Client, int], httpx.Response], n: int
) -> Counter[int]:
    headers = {"X-Project-Id": project, "X-User-Id": "u", "X-Roles": "admin"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        with ThreadPoolExecutor(max_workers=n) as pool:
            return Counter(r.status_code for r in pool.map(lambda i: make(http, i), range(n)))


CREATES: dict[str, Callable[[httpx.Client, int], httpx.Response]] = {
    "secrets": lambda http, i: http.post(
        "/v1/secrets", json={"name": f"s{i}", "payload": "x" * 16, "payload_content_type": "text/plain"}
    ),
    "containers": lambda http, i: http.post("/v1/containers", json={"type": "generic", "name": f"c{i}"}),
    "orders": lambda http, i: http.post("/v1/orders", json={"type": "password", "meta": {"length": 12}}),
}
LISTS = {"secrets": "/v1/secrets", "containers": "/v1/containers", "orders": "/v1/orders?type=password"}


@pytest.mark.live
@pytest.mark.parametrize("resource", sorted(CREATES))
def test_concurrent_creates_never_exceed_the_quota(race_server: LiveServer, resource: str) -> None:
    project = f"race-{uuid.uuid4()}"
    admin = {"X-Project-Id": project, "X-User-Id": "u", "X-Roles": "admin"}
    with httpx.Client(base_url=race_server.url, headers=admin, timeout=30) as http:
        r = http.put(f"/v1/project-quotas/{project}", json={"project_quotas": {resource: 5}})
        assert r.status_code == 204, r.text

    outcomes = burst(race_server, project, CREATES[resource], 24)
    assert outcomes == Counter({201 if resource != "orders" else 202: 5, 403: 19}), outcomes
    with httpx.Client(base_url=race_server.url, headers=admin, timeout=30) as http:
        listed: dict[str, Any] = http.get(LISTS[resource]).json()
    assert listed["total"] == 5
