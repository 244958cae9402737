"""Containers (spec §5): create and validate, read, list, delete, container secrets and consumers."""

from __future__ import annotations

import pytest

from tests.conftest import BASE, Api

CONTAINER_KEYS = {
    "container_ref",
    "name",
    "type",
    "status",
    "created",
    "updated",
    "creator_id",
    "secret_refs",
    "consumers",
}


def ref(secret_id: str) -> str:
    return f"{BASE}/v1/secrets/{secret_id}"


def make(api: Api, **body: object) -> str:
    r = api.post("/v1/containers", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == r.json()["container_ref"]
    return str(r.json()["container_ref"].rsplit("/", 1)[1])


def test_generic_container_round_trip(api: Api) -> None:
    a, b = api.create_secret(name="a"), api.create_secret(name="b")
    cid = make(
        api, type="generic", name="pair", secret_refs=[{"name": "first", "secret_ref": ref(a)}, {"secret_ref": ref(b)}]
    )
    body = api.get(f"/v1/containers/{cid}").json()
    assert set(body) == CONTAINER_KEYS
    assert (body["name"], body["type"], body["status"], body["creator_id"]) == ("pair", "generic", "ACTIVE", "user-1")
    assert body["secret_refs"] == [{"name": "first", "secret_ref": ref(a)}, {"name": None, "secret_ref": ref(b)}]
    assert body["consumers"] == []


def test_rsa_and_certificate_containers(api: Api) -> None:
    pub, priv, cert = (api.create_secret(name=n) for n in ("pub", "priv", "cert"))
    make(
        api,
        type="rsa",
        secret_refs=[{"name": "public_key", "secret_ref": ref(pub)}, {"name": "private_key", "secret_ref": ref(priv)}],
    )
    make(api, type="certificate", secret_refs=[{"name": "certificate", "secret_ref": ref(cert)}])
    for body in (
        {"type": "rsa", "secret_refs": [{"name": "public_key", "secret_ref": ref(pub)}]},
        {
            "type": "rsa",
            "secret_refs": [
                {"name": "public_key", "secret_ref": ref(pub)},
                {"name": "private_key", "secret_ref": ref(priv)},
                {"name": "extra", "secret_ref": ref(cert)},
            ],
        },
        {"type": "certificate", "secret_refs": [{"name": "private_key", "secret_ref": ref(priv)}]},
    ):
        assert api.post("/v1/containers", json=body).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"type": "dsa"},
        {},
        {"type": "generic", "name": "n" * 256},
        {"type": "generic", "secret_refs": "x"},
        {"type": "generic", "secret_refs": [{"name": "x"}]},
        {
            "type": "generic",
            "secret_refs": [{"secret_ref": "http://elsewhere/v1/secrets/4f1c1d7e-3b0a-4d4e-9a53-2c1b9e0f6a7d"}],
        },
    ],
)
def test_invalid_containers(api: Api, body: dict[str, object]) -> None:
    assert api.post("/v1/containers", json=body).status_code == 400
    assert api.get("/v1/containers").json()["total"] == 0


def test_duplicates_and_foreign_secrets(api: Api) -> None:
    a, b = api.create_secret(name="a"), api.create_secret(name="b")
    dup_names = [{"secret_ref": ref(a)}, {"secret_ref": ref(b)}]  # both unnamed: "" twice
    assert api.post("/v1/containers", json={"type": "generic", "secret_refs": dup_names}).status_code == 400
    dup_ids = [{"name": "x", "secret_ref": ref(a)}, {"name": "y", "secret_ref": ref(a)}]
    assert api.post("/v1/containers", json={"type": "generic", "secret_refs": dup_ids}).status_code == 400
    theirs = api.other_project().create_secret(name="theirs")
    r = api.post("/v1/containers", json={"type": "generic", "secret_refs": [{"name": "t", "secret_ref": ref(theirs)}]})
    assert (r.status_code, r.json()["description"]) == (404, "Secret provided for 't' doesn't exist.")


def test_list_filters_and_paging(api: Api) -> None:
    made = [make(api, type="generic", name=f"c-{i}") for i in range(4)]
    s = api.create_secret(name="s")
    pub = api.create_secret(name="p")
    make(
        api,
        type="rsa",
        name="keys",
        secret_refs=[{"name": "public_key", "secret_ref": ref(pub)}, {"name": "private_key", "secret_ref": ref(s)}],
    )
    page = api.get("/v1/containers?limit=2&offset=1").json()
    assert page["total"] == 5
    assert [c["container_ref"].rsplit("/", 1)[1] for c in page["containers"]] == made[1:3]
    assert {"next", "previous"} <= set(page)
    assert [c["name"] for c in api.get("/v1/containers?type=rsa").json()["containers"]] == ["keys"]
    assert api.get("/v1/containers?name=c-%25").json()["total"] == 4


def test_delete_keeps_secrets_and_secret_delete_shrinks_containers(api: Api) -> None:
    a, b = api.create_secret(name="a"), api.create_secret(name="b")
    cid = make(
        api, type="generic", secret_refs=[{"name": "a", "secret_ref": ref(a)}, {"name": "b", "secret_ref": ref(b)}]
    )
    assert api.delete(f"/v1/secrets/{a}").status_code == 204
    assert api.get(f"/v1/containers/{cid}").json()["secret_refs"] == [{"name": "b", "secret_ref": ref(b)}]
    assert api.delete(f"/v1/containers/{cid}").status_code == 204
    assert api.get(f"/v1/containers/{cid}").status_code == 404
    assert api.get(f"/v1/secrets/{b}").status_code == 200


def test_container_secrets(api: Api) -> None:
    a, b = api.create_secret(name="a"), api.create_secret(name="b")
    cid = make(api, type="generic", secret_refs=[{"name": "a", "secret_ref": ref(a)}])
    r = api.post(f"/v1/containers/{cid}/secrets", json={"name": "b", "secret_ref": ref(b)})
    assert (r.status_code, r.json()) == (201, {"container_ref": f"{BASE}/v1/containers/{cid}"})
    assert api.post(f"/v1/containers/{cid}/secrets", json={"name": "b", "secret_ref": ref(b)}).status_code == 409
    assert len(api.get(f"/v1/containers/{cid}").json()["secret_refs"]) == 2
    assert (
        api.request("DELETE", f"/v1/containers/{cid}/secrets", json={"name": "b", "secret_ref": ref(b)}).status_code
        == 204
    )
    assert (
        api.request("DELETE", f"/v1/containers/{cid}/secrets", json={"name": "b", "secret_ref": ref(b)}).status_code
        == 404
    )
    pub, priv = api.create_secret(name="pub"), api.create_secret(name="priv")
    rsa = make(
        api,
        type="rsa",
        secret_refs=[{"name": "public_key", "secret_ref": ref(pub)}, {"name": "private_key", "secret_ref": ref(priv)}],
    )
    r = api.post(f"/v1/containers/{rsa}/secrets", json={"name": "x", "secret_ref": ref(a)})
    assert (r.status_code, r.json()["description"]) == (400, "Only 'generic' containers can be modified.")


def test_container_consumers(api: Api) -> None:
    cid = make(api, type="generic", name="used")
    one, two = {"name": "lb", "URL": "http://lb/1"}, {"name": "app", "URL": "http://app/2"}
    r = api.post(f"/v1/containers/{cid}/consumers", json=one)
    assert (r.status_code, r.json()["consumers"]) == (200, [one])
    assert r.headers["location"] == f"{BASE}/v1/consumers/{cid}/consumers"  # Barbican's, from host_href
    assert api.post(f"/v1/containers/{cid}/consumers", json=one).json()["consumers"] == [one]
    api.post(f"/v1/containers/{cid}/consumers", json=two)
    listed = api.get(f"/v1/containers/{cid}/consumers").json()
    assert [c["name"] for c in listed["consumers"]] == ["app", "lb"] and listed["total"] == 2
    assert api.request("DELETE", f"/v1/containers/{cid}/consumers", json=one).json()["consumers"] == [two]
    assert api.request("DELETE", f"/v1/containers/{cid}/consumers", json=one).status_code == 404
    assert api.post(f"/v1/containers/{cid}/consumers", json={"name": "n" * 37, "URL": "u"}).status_code == 400


def test_another_projects_container_looks_missing(api: Api) -> None:
    cid = make(api, type="generic")
    other = api.other_project()
    missing = "4f1c1d7e-3b0a-4d4e-9a53-2c1b9e0f6a7d"
    for path in ("/v1/containers/{}", "/v1/containers/{}/consumers", "/v1/containers/{}/acl"):
        theirs, nothing = other.get(path.format(cid)), other.get(path.format(missing))
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json() == nothing.json()
    assert other.delete(f"/v1/containers/{cid}").status_code == 404
    assert api.get(f"/v1/containers/{cid}").status_code == 200
