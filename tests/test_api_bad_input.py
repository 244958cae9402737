"""Input that once reached the database and came back as a 500 (issue 12's findings 1-7), on every database.

Each answer is Barbican's 400 (or the list's empty page) in its error shape, and nothing is half-written:
the state after a refused request is the state before it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Api

BAD_QUERY = "URI provided invalid query string parameters."
HUGE = str(2**63)


def assert_error(response: Any, status: int, description: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"code": status, "title": response.reason_phrase, "description": description}


# --- 1. paging offsets past the database's integers ------------------------------------------------------


def test_offsets_past_64_bits_are_an_empty_page_on_every_list(api: Api) -> None:
    secret_id = api.create_secret(name="paged")
    container = api.post("/v1/containers", json={"type": "generic", "name": "paged"})
    assert container.status_code == 201
    container_id = container.json()["container_ref"].rsplit("/", 1)[1]
    assert (
        api.post("/v1/orders", json={"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}}).status_code == 202
    )
    assert api.put(f"/v1/project-quotas/{api.project_id}", json={"project_quotas": {"secrets": 50}}).status_code == 204
    consumer = {"service": "s", "resource_type": "t", "resource_id": "i"}
    assert api.post(f"/v1/secrets/{secret_id}/consumers", json=consumer).status_code == 200
    assert api.post(f"/v1/containers/{container_id}/consumers", json={"name": "n", "URL": "u"}).status_code == 200
    lists = {
        "/v1/secrets": "secrets",
        "/v1/containers": "containers",
        "/v1/orders": "orders",
        "/v1/project-quotas": "project_quotas",
        f"/v1/secrets/{secret_id}/consumers": "consumers",
        f"/v1/containers/{container_id}/consumers": "consumers",
    }
    for path, key in lists.items():
        for offset in (HUGE, str(2**64 + 5), "9" * 400):
            r = api.get(path, params={"offset": offset})
            assert r.status_code == 200, (path, r.text)
            body = r.json()
            assert body[key] == [] and body["total"] >= 1 and "next" not in body, path
            assert body["previous"].endswith(f"offset={int(offset) - 10}"), path


# --- 2. NUL characters, in every text field and filter ----------------------------------------------------


def _nul(schema: str, prop: str) -> str:
    return (
        f"Provided object does not match schema '{schema}': '{prop}' must not contain NUL characters. "
        f"Invalid property: '{prop}'"
    )


@pytest.mark.parametrize("field", ["name", "algorithm", "mode"])
def test_nul_in_a_secret_field_is_refused_and_nothing_is_stored(api: Api, field: str) -> None:
    r = api.post("/v1/secrets", json={field: "a\u0000b", "payload": "p", "payload_content_type": "text/plain"})
    assert_error(r, 400, _nul("Secret", field))
    assert api.get("/v1/secrets").json()["total"] == 0


def test_a_nul_in_a_payload_is_data_and_kept(api: Api) -> None:
    # Payloads are sealed bytes, never a text column: a NUL in one is the client's data.
    secret_id = api.create_secret(payload="a\u0000b", payload_content_type="text/plain")
    r = api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"})
    assert r.content == b"a\x00b"


@pytest.mark.parametrize(
    "order",
    [
        {"type": "key", "meta": {"name": "k\u0000", "algorithm": "aes", "bit_length": 256}},
        {"type": "key", "meta": {"algorithm": "aes\u0000", "bit_length": 256}},
        {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "mode": "cbc\u0000"}},
        {"type": "asymmetric", "meta": {"name": "\u0000", "algorithm": "rsa", "bit_length": 2048}},
        {"type": "password", "meta": {"name": "pw\u0000"}},
    ],
)
def test_an_order_with_a_nul_never_reaches_the_worker(api: Api, order: dict[str, Any]) -> None:
    r = api.post("/v1/orders", json=order)
    assert r.status_code == 400, r.text
    assert "must not contain NUL characters" in r.json()["description"]
    assert api.get("/v1/orders", params={"type": order["type"]}).json()["total"] == 0


def test_nul_in_metadata_consumers_containers_and_acls(api: Api) -> None:
    secret_id = api.create_secret(name="s")
    r = api.put(f"/v1/secrets/{secret_id}/metadata", json={"metadata": {"k": "v\u0000"}})
    assert_error(r, 400, "Invalid Metadata. Values must not contain NUL characters.")
    r = api.post(f"/v1/secrets/{secret_id}/metadata", json={"key": "k", "value": "\u0000"})
    assert_error(r, 400, "Invalid Metadata. Values must not contain NUL characters.")
    assert api.get(f"/v1/secrets/{secret_id}/metadata").json() == {"metadata": {}}

    r = api.post(
        f"/v1/secrets/{secret_id}/consumers", json={"service": "s", "resource_type": "t\u0000", "resource_id": "i"}
    )
    assert_error(r, 400, _nul("Secret Consumer", "resource_type"))
    assert api.get(f"/v1/secrets/{secret_id}/consumers").json()["total"] == 0

    r = api.post("/v1/containers", json={"type": "generic", "name": "c\u0000"})
    assert_error(r, 400, _nul("Container", "name"))
    ref = f"{api.client.base_url}/v1/secrets/{secret_id}"
    r = api.post("/v1/containers", json={"type": "generic", "secret_refs": [{"name": "\u0000", "secret_ref": ref}]})
    assert_error(r, 400, _nul("Container", "name"))
    assert api.get("/v1/containers").json()["total"] == 0

    container_id = api.post("/v1/containers", json={"type": "generic"}).json()["container_ref"].rsplit("/", 1)[1]
    r = api.post(f"/v1/containers/{container_id}/consumers", json={"name": "n", "URL": "http://x/\u0000"})
    assert_error(r, 400, _nul("Container Consumer", "URL"))
    assert api.get(f"/v1/containers/{container_id}/consumers").json()["total"] == 0

    for path in (f"/v1/secrets/{secret_id}/acl", f"/v1/containers/{container_id}/acl"):
        r = api.put(path, json={"read": {"users": ["u\u0000"]}})
        assert_error(r, 400, "Provided object does not match schema 'ACL': 'users' must be a list of user ids")
        assert api.get(path).json()["read"].get("users", []) == []


@pytest.mark.parametrize(
    "path,param",
    [
        ("/v1/secrets", "name"),
        ("/v1/secrets", "alg"),
        ("/v1/secrets", "mode"),
        ("/v1/containers", "name"),
        ("/v1/containers", "type"),
        ("/v1/orders", "meta"),
    ],
)
def test_nul_in_a_list_filter_is_refused(api: Api, path: str, param: str) -> None:
    api.create_secret(name="s", algorithm="aes", mode="cbc")
    api.post("/v1/containers", json={"type": "generic", "name": "c"})
    assert_error(api.get(path, params={param: "a\u0000"}), 400, BAD_QUERY)


def test_nul_in_a_project_quota_path(api: Api) -> None:
    assert_error(api.put("/v1/project-quotas/p%00q", json={"project_quotas": {"secrets": 1}}), 400, _BAD_PROJECT)
    assert_error(api.get("/v1/project-quotas/p%00q"), 404, "Project quotas not found.")
    assert_error(api.delete("/v1/project-quotas/p%00q"), 404, "Project quotas not found.")


# --- 3. LIKE filters: one meaning on every database ------------------------------------------------------


def test_like_filters_treat_backslash_as_a_character_and_keep_wildcards(api: Api) -> None:
    plain = api.create_secret(name="abc", algorithm="aes", mode="cbc")
    slashed = api.create_secret(name="a\\c", algorithm="x\\", mode="\\")
    api.post("/v1/containers", json={"type": "generic", "name": "c\\"})

    def names(**params: str) -> set[str]:
        r = api.get("/v1/secrets", params=params)
        assert r.status_code == 200, r.text
        return {s["secret_ref"].rsplit("/", 1)[1] for s in r.json()["secrets"]}

    assert names(name="\\") == set()
    assert names(name="a\\c") == {slashed}
    assert names(name="a\\%") == {slashed}  # "a", a backslash, then anything
    assert names(name="a\\_") == {slashed}  # "_" is any one character, as in Barbican
    assert names(name="a%") == {plain, slashed}
    assert names(alg="x\\") == {slashed}
    assert names(mode="\\") == {slashed}
    assert names(mode="%\\") == {slashed}
    r = api.get("/v1/containers", params={"name": "c\\"})
    assert r.status_code == 200 and r.json()["total"] == 1
    assert api.get("/v1/containers", params={"name": "\\"}).json()["total"] == 0
    assert api.get("/v1/orders", params={"meta": "\\"}).status_code == 200


# --- 4. integers outside a column's range ---------------------------------------------------------------


@pytest.mark.parametrize("bits", ["3000000000", "-2147483649", str(10**20), "9" * 300])
def test_a_bits_filter_outside_the_column_range_is_400(api: Api, bits: str) -> None:
    api.create_secret(name="s", bit_length=256)
    assert_error(api.get("/v1/secrets", params={"bits": bits}), 400, BAD_QUERY)


def test_a_bits_filter_at_the_column_range_is_an_empty_page(api: Api) -> None:
    api.create_secret(name="s", bit_length=256)
    for bits in ("2147483647", "-2147483648"):
        r = api.get("/v1/secrets", params={"bits": bits})
        assert r.status_code == 200 and r.json()["total"] == 0


@pytest.mark.parametrize("value", [-99999999999, 2**31, -(2**31) - 1, 2**63 - 1])
def test_a_quota_outside_the_column_range_is_400_and_not_stored(api: Api, value: int) -> None:
    path = f"/v1/project-quotas/{api.project_id}"
    assert api.put(path, json={"project_quotas": {"orders": 7}}).status_code == 204
    r = api.put(path, json={"project_quotas": {"secrets": value, "orders": 8}})
    assert_error(
        r,
        400,
        "Provided object does not match schema 'Project Quotas': 'secrets' must be from -2147483648 to 2147483647",
    )
    assert api.get(path).json()["project_quotas"]["orders"] == 7


def test_quotas_at_the_column_range_are_stored(api: Api) -> None:
    path = f"/v1/project-quotas/{api.project_id}"
    assert api.put(path, json={"project_quotas": {"secrets": 2**31 - 1, "orders": -(2**31)}}).status_code == 204
    stored = api.get(path).json()["project_quotas"]
    assert (stored["secrets"], stored["orders"]) == (2**31 - 1, -(2**31))


# --- 5. expirations with no UTC equivalent --------------------------------------------------------------

_BAD_DATE = "Provided object does not match schema '{}': Invalid date for 'expiration'. Invalid property: 'expiration'"


@pytest.mark.parametrize("expiration", ["9999-12-31T23:59:59.999999-14:00", "9999-12-31T23:00:00-01:00"])
def test_an_expiration_past_datetime_range_in_utc_is_400(api: Api, expiration: str) -> None:
    assert_error(api.post("/v1/secrets", json={"expiration": expiration}), 400, _BAD_DATE.format("Secret"))
    order = {"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "expiration": expiration}}
    assert_error(api.post("/v1/orders", json=order), 400, _BAD_DATE.format("Order"))
    assert api.get("/v1/secrets").json()["total"] == 0
    assert api.get("/v1/orders").json()["total"] == 0


def test_an_expiration_at_the_edge_in_utc_is_stored(api: Api) -> None:
    secret_id = api.create_secret(expiration="9999-12-31T23:59:59.999999+00:00")
    assert api.get(f"/v1/secrets/{secret_id}").json()["expiration"] == "9999-12-31T23:59:59.999999"


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59.999999-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_time_filter_past_datetime_range_in_utc_is_400(api: Api, value: str) -> None:
    assert_error(api.get("/v1/secrets", params={"created": f"gt:{value}"}), 400, BAD_QUERY)


def test_time_filters_at_the_range_edges_answer(api: Api) -> None:
    api.create_secret(name="s")
    for value in ("gt:0001-01-01T00:00:00", "lt:9999-12-31T23:59:59.999999", "lt:1000-01-01T00:00:00"):
        r = api.get("/v1/secrets", params={"created": value})
        assert r.status_code == 200, (value, r.text)


# --- 6. metadata keys that differ only in case ----------------------------------------------------------


def test_metadata_keys_differing_only_in_case_are_refused_and_nothing_is_replaced(api: Api) -> None:
    secret_id = api.create_secret(name="m")
    path = f"/v1/secrets/{secret_id}/metadata"
    assert api.put(path, json={"metadata": {"kept": "1"}}).status_code == 201
    r = api.put(path, json={"metadata": {"Key": "a", "key": "b"}})
    assert_error(r, 400, "Invalid Metadata. Keys must be unique regardless of case.")
    assert api.get(path).json() == {"metadata": {"kept": "1"}}
    # Case alone still folds, as in Barbican.
    assert api.put(path, json={"metadata": {"Only": "x"}}).status_code == 201
    assert api.get(path).json() == {"metadata": {"only": "x"}}


# --- 7. lengths checked before the database -------------------------------------------------------------

_BAD_PROJECT = "Invalid project id: at most 255 characters, and no NUL characters."


def test_a_user_id_over_255_characters_is_400_and_nothing_is_stored(api: Api) -> None:
    r = api.post("/v1/secrets", json={"name": "x"}, headers={"X-User-Id": "u" * 256})
    assert_error(r, 400, "X-User-Id is longer than 255 characters")
    assert api.get("/v1/secrets").json()["total"] == 0
    assert api.post("/v1/secrets", json={"name": "x"}, headers={"X-User-Id": "u" * 255}).status_code == 201


def test_a_project_quota_path_over_255_characters(api: Api) -> None:
    long_id = "p" * 300
    assert_error(api.put(f"/v1/project-quotas/{long_id}", json={"project_quotas": {"secrets": 1}}), 400, _BAD_PROJECT)
    assert_error(api.get(f"/v1/project-quotas/{long_id}"), 404, "Project quotas not found.")
    assert_error(api.delete(f"/v1/project-quotas/{long_id}"), 404, "Project quotas not found.")
    assert all(r["project_id"] != long_id for r in api.get("/v1/project-quotas?limit=100").json()["project_quotas"])
    at_limit = f"q{uuid.uuid4().hex}".ljust(255, "q")
    assert api.put(f"/v1/project-quotas/{at_limit}", json={"project_quotas": {"secrets": 1}}).status_code == 204
    assert api.delete(f"/v1/project-quotas/{at_limit}").status_code == 204


def test_a_project_quota_body_is_read_within_the_limit(api: Api) -> None:
    body = b'{"project_quotas": {"secrets": 1}, "padding": "' + b"x" * 100_000 + b'"}'
    r = api.put(f"/v1/project-quotas/{api.project_id}", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "Provided information too large to process")
    assert api.get(f"/v1/project-quotas/{api.project_id}").status_code == 404


# --- ids are compared byte for byte on every database (MariaDB's default collation did not) -------------


def test_ids_differing_in_case_or_accents_are_different_ids(api: Api) -> None:
    secret_id = api.create_secret(name="mine", payload="p", payload_content_type="text/plain")
    upper = Api(api.client, api.project_id.upper(), "user-1")
    assert upper.project_id != api.project_id
    assert upper.get("/v1/secrets").json()["total"] == 0
    assert upper.get(f"/v1/secrets/{secret_id}").status_code == 404
    # An ACL naming "Alice" does not admit "alice"; "A" and "a", "é" and "e" are four users.
    acl = f"/v1/secrets/{secret_id}/acl"
    users = ["Alice", "A", "a", "é", "e"]
    assert api.put(acl, json={"read": {"users": users, "project-access": True}}).status_code == 200
    assert sorted(api.get(acl).json()["read"]["users"]) == sorted(users)
    for user, status in (("Alice", 200), ("alice", 404), ("ALICE", 404)):
        stranger = Api(api.client, f"other-{uuid.uuid4()}", user)
        r = stranger.get(f"/v1/secrets/{secret_id}/payload", headers={"X-Roles": "member", "Accept": "text/plain"})
        assert r.status_code == status, user
    quotas = f"/v1/project-quotas/{api.project_id}"
    assert api.put(quotas, json={"project_quotas": {"secrets": 5}}).status_code == 204
    assert api.get(f"/v1/project-quotas/{api.project_id.upper()}").status_code == 404
