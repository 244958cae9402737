"""Secret user metadata (spec §3) and secret consumers (spec §4)."""

from __future__ import annotations

import pytest

from tests.conftest import BASE, Api


def test_metadata_lifecycle(api: Api) -> None:
    sid = api.create_secret(name="m")
    assert api.get(f"/v1/secrets/{sid}/metadata").json() == {"metadata": {}}
    r = api.put(f"/v1/secrets/{sid}/metadata", json={"metadata": {"Owner": "team-a", "env": "prod"}})
    assert r.status_code == 201
    assert r.json() == {"metadata_ref": f"{BASE}/v1/secrets/{sid}/metadata"}
    assert api.get(f"/v1/secrets/{sid}/metadata").json() == {"metadata": {"owner": "team-a", "env": "prod"}}
    r = api.post(f"/v1/secrets/{sid}/metadata", json={"key": "tier", "value": "gold"})
    assert (r.status_code, r.json()) == (201, {"key": "tier", "value": "gold"})
    assert r.headers["location"] == f"{BASE}/v1/secrets/{sid}/metadata/tier"
    assert api.post(f"/v1/secrets/{sid}/metadata", json={"key": "tier", "value": "x"}).status_code == 409
    assert api.get(f"/v1/secrets/{sid}/metadata/tier").json() == {"key": "tier", "value": "gold"}
    r = api.put(f"/v1/secrets/{sid}/metadata/tier", json={"key": "tier", "value": "silver"})
    assert (r.status_code, r.json()) == (200, {"key": "tier", "value": "silver"})
    assert api.put(f"/v1/secrets/{sid}/metadata/tier", json={"key": "other", "value": "v"}).status_code == 409
    assert api.put(f"/v1/secrets/{sid}/metadata/absent", json={"key": "absent", "value": "v"}).status_code == 404
    assert api.delete(f"/v1/secrets/{sid}/metadata/tier").status_code == 204
    assert api.delete(f"/v1/secrets/{sid}/metadata/tier").status_code == 204
    assert api.get(f"/v1/secrets/{sid}/metadata/tier").status_code == 404
    api.put(f"/v1/secrets/{sid}/metadata", json={"metadata": {"only": "this"}})
    assert api.get(f"/v1/secrets/{sid}/metadata").json() == {"metadata": {"only": "this"}}
    assert api.request("PATCH", f"/v1/secrets/{sid}/metadata/only").status_code == 405


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"bad key": "v"}},
        {"metadata": {"k": 1}},
        {"metadata": {"k": "v" * 256}},
        {"metadata": "k=v"},
        {},
    ],
)
def test_bad_bulk_metadata(api: Api, body: dict[str, object]) -> None:
    sid = api.create_secret(name="m")
    assert api.put(f"/v1/secrets/{sid}/metadata", json=body).status_code == 400
    assert api.get(f"/v1/secrets/{sid}/metadata").json() == {"metadata": {}}


@pytest.mark.parametrize(
    "body",
    [{"key": "a/b", "value": "v"}, {"key": "k"}, {"key": "k", "value": "v", "x": 1}, {"key": "k" * 256, "value": "v"}],
)
def test_bad_single_metadata(api: Api, body: dict[str, object]) -> None:
    sid = api.create_secret(name="m")
    assert api.post(f"/v1/secrets/{sid}/metadata", json=body).status_code == 400


def test_consumers(api: Api) -> None:
    sid = api.create_secret(name="c")
    one = {"service": "image", "resource_type": "image", "resource_id": "img-1"}
    two = {"service": "volume", "resource_type": "volume", "resource_id": "vol-9"}
    r = api.post(f"/v1/secrets/{sid}/consumers", json=one)
    assert r.status_code == 200
    # Barbican's Location for a consumer (hrefs.convert_consumer_to_href), from host_href: it names no resource.
    assert r.headers["location"] == f"{BASE}/v1/consumers/{sid}/consumers"
    assert r.json()["secret_ref"] == f"{BASE}/v1/secrets/{sid}"
    assert r.json()["consumers"] == [one]
    assert api.post(f"/v1/secrets/{sid}/consumers", json=one).json()["consumers"] == [one], "idempotent"
    assert api.post(f"/v1/secrets/{sid}/consumers", json=two).json()["consumers"] == [one, two]
    page = api.get(f"/v1/secrets/{sid}/consumers?limit=1").json()
    assert page["total"] == 2 and len(page["consumers"]) == 1 and "next" in page
    assert set(page["consumers"][0]) == {"service", "resource_type", "resource_id", "created", "updated", "status"}
    r = api.request("DELETE", f"/v1/secrets/{sid}/consumers", json=one)
    assert (r.status_code, r.json()["consumers"]) == (200, [two])
    r = api.request("DELETE", f"/v1/secrets/{sid}/consumers", json=one)
    assert (r.status_code, r.json()["description"]) == (404, "Consumer not found.")


@pytest.mark.parametrize(
    "body",
    [
        {"service": "s", "resource_type": "t"},
        {"service": "", "resource_type": "t", "resource_id": "r"},
        {"service": "s", "resource_type": "t", "resource_id": 5},
    ],
)
def test_bad_consumers(api: Api, body: dict[str, object]) -> None:
    sid = api.create_secret(name="c")
    assert api.post(f"/v1/secrets/{sid}/consumers", json=body).status_code == 400


def test_consumer_delete_needs_json(api: Api) -> None:
    sid = api.create_secret(name="c")
    r = api.request(
        "DELETE", f"/v1/secrets/{sid}/consumers", content=b"service=s", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415
