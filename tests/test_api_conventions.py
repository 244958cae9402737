"""Global conventions (spec §0, §1): version discovery, microversions, request ids, trailing slashes, errors."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from tests.conftest import BASE, Api

REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_root_without_microversion_is_the_legacy_300(app_client: TestClient) -> None:
    r = app_client.get("/")
    assert r.status_code == 300
    body = r.json()
    assert body == {
        "versions": {
            "values": [
                {
                    "id": "v1",
                    "status": "stable",
                    "links": [
                        {"rel": "self", "href": f"{BASE}/v1/"},
                        {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                    ],
                    "media-types": [
                        {"base": "application/json", "type": "application/vnd.openstack.key-manager-v1+json"}
                    ],
                }
            ]
        }
    }


@pytest.mark.parametrize("header", ["key-manager 1.1", "key-manager latest", "key-manager 1.2"])
def test_root_with_microversion_is_the_current_300(app_client: TestClient, header: str) -> None:
    r = app_client.get("/", headers={"OpenStack-API-Version": header})
    assert r.status_code == 300
    (version,) = r.json()["versions"]
    assert (version["status"], version["min_version"], version["max_version"]) == ("CURRENT", "1.0", "1.2")
    assert r.headers["openstack-api-version"] == (
        "key-manager 1.2" if header.endswith(("latest", "1.2")) else "key-manager 1.1"
    )


def test_root_build_and_json_home(app_client: TestClient) -> None:
    assert app_client.get("/?build").json().keys() == {"build"}
    r = app_client.get("/", headers={"Accept": "application/json-home"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (302, f"{BASE}/v1/")


def test_v1_needs_a_project(app_client: TestClient, api: Api) -> None:
    assert api.get("/v1").json()["version"]["id"] == "v1"
    r = app_client.get("/v1")
    assert r.status_code == 400
    assert r.json() == {"code": 400, "title": "Bad Request", "description": "Missing X-Project-Id"}


@pytest.mark.parametrize(
    "header,status",
    [("key-manager 2.0", 406), ("key-manager 0.9", 406), ("key-manager one", 400), ("key-manager 1", 400)],
)
def test_bad_microversions(app_client: TestClient, header: str, status: int) -> None:
    r = app_client.get("/v1/secrets", headers={"OpenStack-API-Version": header, "X-Project-Id": "p"})
    assert r.status_code == status
    assert r.json()["code"] == status
    assert r.headers["vary"] == "OpenStack-API-Version"
    assert r.headers["openstack-api-version"].startswith("key-manager ")


def test_every_response_has_a_request_id_and_version_headers(api: Api) -> None:
    responses = [
        api.get("/v1/secrets"),
        api.get("/v1/nothing-here"),
        api.request("PATCH", "/v1/secrets"),
        api.client.get("/"),
    ]
    for r in responses:
        assert REQUEST_ID.match(r.headers["x-openstack-request-id"])
        assert r.headers["openstack-api-version"] == "key-manager 1.0"
        assert r.headers["vary"] == "OpenStack-API-Version"
    ids = {r.headers["x-openstack-request-id"] for r in responses}
    assert len(ids) == len(responses)


def test_consumers_key_appears_from_1_1(api: Api) -> None:
    sid = api.create_secret(name="v")
    assert "consumers" not in api.get(f"/v1/secrets/{sid}").json()
    assert api.at("1.1").get(f"/v1/secrets/{sid}").json()["consumers"] == []
    assert "consumers" not in api.get("/v1/secrets").json()["secrets"][0]
    assert api.at("1.1").get("/v1/secrets").json()["secrets"][0]["consumers"] == []


def test_trailing_slashes_are_accepted(api: Api) -> None:
    r = api.post("/v1/secrets/", json={"name": "slash"})
    assert r.status_code == 201
    sid = r.json()["secret_ref"].rsplit("/", 1)[1]
    assert api.get(f"/v1/secrets/{sid}/").json()["name"] == "slash"
    assert api.get("/v1/secrets/").json()["total"] == 1
    consumer = {"service": "s", "resource_type": "t", "resource_id": "r"}
    assert api.post(f"/v1/secrets/{sid}/consumers/", json=consumer).status_code == 200


def test_unknown_paths_and_methods(api: Api) -> None:
    r = api.get("/v1/cas")
    assert (r.status_code, set(r.json())) == (404, {"code", "title", "description"})
    r = api.request("PATCH", "/v1/secrets")
    assert r.status_code == 405
    assert r.json() == {"code": 405, "title": "Method Not Allowed", "description": None}


def test_healthcheck(app_client: TestClient) -> None:
    assert app_client.get("/healthcheck").text == "OK"
