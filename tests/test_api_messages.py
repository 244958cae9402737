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


def test_a_refused_payload_or_passphrase_is_never_quoted(api: Api) -> None:
    # jsonschema's messages quote the value ("123456789 is not of type 'string'"); for secret fields the
    # property is named instead.
    r = api.post("/v1/secrets", json={"payload": 123456789, "payload_content_type": "text/plain"})
    assert r.status_code == 400
    assert r.json()["description"] == (
        "Provided object does not match schema 'Secret': payload is not of type 'string', 'null'."
        " Invalid property: 'payload'"
    )
    for meta in ({"passphrase": 987654321}, {"pass_phrase": ["s3cr3t-pass"]}):
        order = {"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 2048, **meta}}
        r = api.post("/v1/orders", json=order)
        assert r.status_code == 400
        assert "987654321" not in r.text and "s3cr3t-pass" not in r.text, r.text
    r = api.post("/v1/orders", json={"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "payload": "k3y"}})
    assert r.status_code == 400 and "k3y" not in r.text, r.text


def test_refusals_are_barbicans_words(api: Api) -> None:
    # jsonschema's message, and the property Barbican names: the schema path's second step, None at the top.
    r = api.post("/v1/secrets", json={"secret_type": "nope"})
    assert r.json()["description"] == (
        "Provided object does not match schema 'Secret': 'nope' is not one of ['symmetric', 'public', 'private',"
        " 'passphrase', 'certificate', 'opaque']. Invalid property: 'secret_type'"
    )
    r = api.post("/v1/orders", json={"type": "key"})
    assert r.json()["description"] == (
        "Provided object does not match schema 'Order': 'meta' is a required property. Invalid property: 'None'"
    )
    r = api.post("/v1/orders", json={"type": "password", "meta": {"length": 7}})
    assert r.json()["description"] == (
        "Provided object does not match schema 'Order': 7 is less than the minimum of 8. Invalid property: 'length'"
    )
