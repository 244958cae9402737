"""Limited secrets (``max_reads``): served N times, then gone with their ciphertext; a refused read
spends nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from donjon.storage.database import Database
from tests.conftest import Api
from tests.lifecycle_helpers import (
    ciphertext_of,
    db_fixture,  # noqa: F401  (the module's ``db`` fixture)
    tables_holding,
    tombstone,
)


def test_max_reads_serves_n_times_then_the_secret_is_gone(api: Api, db: Database) -> None:
    sid = api.create_secret(name="twice", payload="read-me-twice", payload_content_type="text/plain", max_reads=2)
    blob = ciphertext_of(db, sid)
    meta = api.get(f"/v1/secrets/{sid}").json()
    assert "max_reads" not in meta and "reads_left" not in meta  # the Barbican representation is unchanged
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json()["reads_left"] == 2
    r1 = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert (r1.status_code, r1.content) == (200, b"read-me-twice")
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json() == {
        "max_reads": 2,
        "reads_left": 1,
        "current_version": 1,
        "versions": [{"version": 1, "created": meta["created"], "readable_until": None}],
    }
    r2 = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert (r2.status_code, r2.content) == (200, b"read-me-twice")
    r3 = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert r3.status_code == 404
    assert set(r3.json()) == {"code", "title", "description"}
    assert api.get(f"/v1/secrets/{sid}").status_code == 404
    assert tables_holding(db, blob) == []
    assert tombstone(db, sid).deleted_reason == "read-limit"


def test_a_refused_read_spends_nothing(api: Api) -> None:
    sid = api.create_secret(
        name="bin", payload=base64.b64encode(b"\xff\xfe").decode(), payload_content_type="application/octet-stream",
        payload_content_encoding="base64", max_reads=1,
    )  # fmt: skip
    # Not UTF-8: a text/plain read is 406 and must not burn the only read.
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"}).status_code == 406
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/xml"}).status_code == 406
    assert api.get(f"/v1/secrets/{sid}/lifecycle").json()["reads_left"] == 1
    ok = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/octet-stream"})
    assert (ok.status_code, ok.content) == (200, b"\xff\xfe")


def test_max_reads_with_two_step_create(api: Api) -> None:
    sid = api.create_secret(name="later", max_reads=1)
    assert api.put(f"/v1/secrets/{sid}", content=b"two-step", headers={"Content-Type": "text/plain"}).status_code == 204
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"}).content == b"two-step"
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 404


@pytest.mark.parametrize("value", [0, -1, 1_000_001, "1", 1.5, True, None, [1]])
def test_max_reads_validation(api: Api, value: Any) -> None:
    r = api.post(
        "/v1/secrets", json={"name": "x", "payload": "p", "payload_content_type": "text/plain", "max_reads": value}
    )
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"code", "title", "description"}
    assert "max_reads" in r.json()["description"]
    assert api.get("/v1/secrets").json()["total"] == 0


def test_limited_secrets_in_lists_keep_barbicans_keys(api: Api) -> None:
    api.create_secret(name="limited", payload="p", payload_content_type="text/plain", max_reads=3)
    (item,) = api.get("/v1/secrets").json()["secrets"]
    assert "max_reads" not in item and "reads_left" not in item
