"""Transport keys (spec §10), served as Barbican 23 serves them (issue 15, item 8): an admin registers and
deletes them (201, 204), readers list and read them, members and readers may not write (403). Cloud-wide
rows, as in Barbican: another project's reader sees them too."""

from __future__ import annotations

import pytest

from donjon.api.schemas.transport_keys import new_transport_key
from donjon.errors import InvalidInput
from tests.conftest import BASE, Api

KEY = {"plugin_name": "kmip", "transport_key": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"}


def _as(api: Api, roles: str) -> dict[str, str]:
    return {"X-Roles": roles}


def test_an_admin_registers_reads_lists_and_deletes_one(api: Api) -> None:
    r = api.post("/v1/transport_keys", json=KEY)  # dev mode without X-Roles: admin, as in Barbican
    assert r.status_code == 201, r.text
    ref = r.json()["transport_key_ref"]
    key_id = ref.rsplit("/", 1)[1]
    assert ref == f"{BASE}/v1/transport_keys/{key_id}" and r.headers["location"] == ref

    reader = api.other_project()
    row = reader.get(f"/v1/transport_keys/{key_id}", headers=_as(reader, "reader")).json()
    assert set(row) == {
        "id",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
        "status",
        "plugin_name",
        "transport_key",
    }
    assert (row["id"], row["plugin_name"], row["transport_key"], row["status"]) == (
        key_id,
        "kmip",
        KEY["transport_key"],
        "ACTIVE",
    )
    listed = reader.get("/v1/transport_keys?plugin_name=kmip&limit=100", headers=_as(reader, "reader")).json()
    assert ref in listed["transport_keys"] and listed["total"] >= 1

    assert api.delete(f"/v1/transport_keys/{key_id}").status_code == 204
    assert api.get(f"/v1/transport_keys/{key_id}").status_code == 404
    assert api.delete(f"/v1/transport_keys/{key_id}").status_code == 404


@pytest.mark.parametrize("roles", ["member", "reader", "creator", "audit"])
def test_others_may_not_write(api: Api, roles: str) -> None:
    r = api.post("/v1/transport_keys", json=KEY, headers=_as(api, roles))
    assert r.status_code == 403
    assert r.json()["description"].startswith("Transport Key Creation attempt not allowed")
    # Authorised before the body is read: a bad body changes nothing for them.
    assert api.post("/v1/transport_keys", json=[], headers=_as(api, roles)).status_code == 403
    key_id = api.post("/v1/transport_keys", json=KEY).json()["transport_key_ref"].rsplit("/", 1)[1]
    assert api.delete(f"/v1/transport_keys/{key_id}", headers=_as(api, roles)).status_code == 403
    assert api.get(f"/v1/transport_keys/{key_id}").status_code == 200, "still there"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"plugin_name": "kmip"},
        {"transport_key": "k"},
        {"plugin_name": "  ", "transport_key": "k"},
        {"plugin_name": "kmip", "transport_key": 5},
        {"plugin_name": "x" * 256, "transport_key": "k"},
        {"plugin_name": "kmip", "transport_key": "a\u0000b"},
    ],
)
def test_invalid_keys_are_400_and_write_nothing(api: Api, body: object) -> None:
    before = api.get("/v1/transport_keys").json()["total"]
    r = api.post("/v1/transport_keys", json=body)
    assert r.status_code == 400 and "Transport Key" in r.json()["description"]
    assert api.get("/v1/transport_keys").json()["total"] == before


def test_a_key_past_the_column_is_refused() -> None:
    """MariaDB's TEXT holds 65 535 bytes: more is 400 (only reachable with a larger limits.max_request_bytes)."""
    assert new_transport_key({"plugin_name": "p", "transport_key": "é" * 32767})[1] == "é" * 32767
    with pytest.raises(InvalidInput, match="longer than 65535 bytes"):
        new_transport_key({"plugin_name": "p", "transport_key": "é" * 32768})


def test_malformed_ids_are_404_before_policy(api: Api) -> None:
    for method in ("GET", "DELETE"):
        r = api.request(method, "/v1/transport_keys/not-a-uuid", headers=_as(api, "guest"))
        assert (r.status_code, r.json()["description"]) == (404, "Not Found. Provided transport key id is invalid.")
