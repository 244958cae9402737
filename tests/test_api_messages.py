"""Messages a newcomer reads: a near-miss of a donjon extension field is a 400 naming the right field (and
what Barbican's clients send still passes), a 406 names what would have worked."""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.mark.parametrize("field", ["max_read", "maxReads", "max-reads", "max_reds", "MAX_READS"])
def test_a_near_miss_of_max_reads_is_a_400_naming_max_reads(api: Api, field: str) -> None:
    r = api.post("/v1/secrets", json={"payload": "x", "payload_content_type": "text/plain", field: 1})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == 400 and body["title"] == "Bad Request"
    assert f"unknown property '{field}': did you mean 'max_reads'?" in body["description"]
    # Nothing was written.
    assert api.get("/v1/secrets").json()["total"] == 0


def test_fields_barbican_knows_or_ignores_still_pass(api: Api) -> None:
    # What python-barbicanclient sends, plus properties Barbican ignores (none close to an extension).
    body = {
        "name": "n",
        "algorithm": "aes",
        "mode": "cbc",
        "bit_length": 256,
        "secret_type": "opaque",
        "expiration": None,
        "payload": "x",
        "payload_content_type": "text/plain",
        "transport_key_needed": "false",
        "project_id": "ignored",
        "creator_id": "ignored",
        "reads": 3,
        "max": 1,
    }
    body = {k: v for k, v in body.items() if v is not None}
    sid = api.create_secret(**body)
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"}).text == "x"
    # And the extension itself, spelled right, works.
    limited = api.create_secret(payload="y", payload_content_type="text/plain", max_reads=1)
    assert api.get(f"/v1/secrets/{limited}/payload", headers={"Accept": "text/plain"}).status_code == 200
    assert api.get(f"/v1/secrets/{limited}/payload", headers={"Accept": "text/plain"}).status_code == 404


def test_406_names_the_content_types_that_work(api: Api) -> None:
    sid = api.create_secret(payload="x", payload_content_type="text/plain")
    r = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/json+x"})
    assert r.status_code == 406
    description = r.json()["description"]
    assert description.startswith("Wrong payload content-type")  # Barbican's words first
    for media_type in ("application/octet-stream", "text/plain", "*/*"):
        assert media_type in description


def test_406_for_binary_as_text_says_to_ask_for_octet_stream(api: Api) -> None:
    sid = api.create_secret(
        payload="/w==", payload_content_type="application/octet-stream", payload_content_encoding="base64"
    )
    r = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert r.status_code == 406
    assert "not UTF-8" in r.json()["description"] and "application/octet-stream" in r.json()["description"]


def test_406_for_a_microversion_names_the_served_range(api: Api) -> None:
    r = api.get("/v1/secrets", headers={"OpenStack-API-Version": "key-manager 2.0"})
    assert r.status_code == 406
    assert "1.0 to 1.2" in r.json()["description"]
