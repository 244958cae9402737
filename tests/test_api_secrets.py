"""The secrets resource (spec §2) on every database: create, read, payload negotiation, two-step, delete."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from tests.clock import MovableClock
from tests.conftest import BASE, Api

SECRET_KEYS = {
    "secret_ref",
    "name",
    "secret_type",
    "status",
    "created",
    "updated",
    "expiration",
    "algorithm",
    "bit_length",
    "mode",
    "creator_id",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def binary(api: Api, data: bytes, **extra: object) -> str:
    return api.create_secret(
        payload=b64(data), payload_content_type="application/octet-stream", payload_content_encoding="base64", **extra
    )


# --- create --------------------------------------------------------------------------------------------


def test_create_answers_201_with_location_and_ref(api: Api) -> None:
    r = api.post("/v1/secrets/", json={"name": "n", "payload": "p", "payload_content_type": "text/plain"})
    assert r.status_code == 201
    ref = r.json()["secret_ref"]
    assert r.json() == {"secret_ref": ref}
    assert r.headers["location"] == ref
    assert ref.startswith(f"{BASE}/v1/secrets/")


@pytest.mark.parametrize(
    "payload",
    ["plain", "  leading and trailing  ", "line\nbreaks\r\n\ttabs\n", "ünïcödé ✓ 秘密", "x" * 20000],
)
def test_text_payloads_are_byte_exact(api: Api, payload: str) -> None:
    sid = api.create_secret(payload=payload, payload_content_type="text/plain")
    r = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"})
    assert r.status_code == 200
    assert r.content == payload.encode()
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("content_type", ["text/plain;charset=utf-8", "text/plain; charset=utf-8", "TEXT/PLAIN"])
def test_text_content_type_spellings(api: Api, content_type: str) -> None:
    sid = api.create_secret(payload="v", payload_content_type=content_type)
    assert api.get(f"/v1/secrets/{sid}").json()["content_types"] == {"default": "text/plain"}


@pytest.mark.parametrize("data", [bytes(range(256)), b"\x00" * 32, b"\xff\xfe\n "])
def test_binary_payloads_are_byte_exact(api: Api, data: bytes) -> None:
    sid = binary(api, data)
    r = api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/octet-stream"})
    assert r.content == data
    assert r.headers["content-type"] == "application/octet-stream"


def test_payload_query_string_is_read_when_there_is_one(api: Api) -> None:
    # Requests without a query string skip parsing one (api.common.query_params): those with one still count.
    sid = binary(api, b"\x00\x01secret")
    path = f"/v1/secrets/{sid}/payload"
    assert api.get(path, headers={"Accept": "application/octet-stream"}).content == b"\x00\x01secret"
    refused = api.get(f"{path}?trans_wrapped_session_key=abc", headers={"Accept": "application/octet-stream"})
    assert refused.status_code == 400
    assert "Transport key wrapped retrieval" in refused.json()["description"]
    assert api.get(f"{path}?version=x", headers={"Accept": "application/octet-stream"}).status_code == 400
    assert api.get(f"{path}?version=1", headers={"Accept": "application/octet-stream"}).content == b"\x00\x01secret"


def test_pkcs8_payload(api: Api) -> None:
    sid = api.create_secret(
        payload=b64(b"DER-ish"),
        payload_content_type="application/pkcs8",
        payload_content_encoding="base64",
        secret_type="private",
    )
    assert api.get(f"/v1/secrets/{sid}").json()["content_types"] == {"default": "application/pkcs8"}
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "*/*"}).content == b"DER-ish"


def test_metadata_of_a_stored_secret(api: Api) -> None:
    expiration = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    sid = binary(
        api,
        b"k" * 32,
        name="key",
        secret_type="symmetric",
        algorithm="aes",
        bit_length=256,
        mode="gcm",
        expiration=expiration.isoformat(),
    )
    body = api.get(f"/v1/secrets/{sid}").json()
    assert set(body) == SECRET_KEYS | {"content_types"}
    assert body["secret_ref"] == f"{BASE}/v1/secrets/{sid}"
    assert (body["name"], body["secret_type"], body["status"]) == ("key", "symmetric", "ACTIVE")
    assert (body["algorithm"], body["bit_length"], body["mode"]) == ("aes", 256, "gcm")
    assert body["creator_id"] == "user-1"
    assert body["expiration"] == expiration.replace(tzinfo=None).isoformat()
    assert body["content_types"] == {"default": "application/octet-stream"}


def test_expiration_with_a_zone_is_stored_as_naive_utc(api: Api) -> None:
    local = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    as_plus2 = local.astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    sid = api.create_secret(name="z", expiration=as_plus2.isoformat())
    assert api.get(f"/v1/secrets/{sid}").json()["expiration"] == local.replace(tzinfo=None).isoformat()


BAD_BODIES = [
    ({"secret_type": "blob"}, 400),
    ({"secret_type": None}, 400),
    ({"bit_length": 0}, 400),
    ({"bit_length": 32768}, 400),
    ({"bit_length": "256"}, 400),
    ({"bit_length": True}, 400),
    ({"algorithm": None}, 400),
    ({"name": 42}, 400),
    ({"name": "n" * 256}, 400),
    ({"payload": "p"}, 400),  # no content type
    ({"payload_content_type": "text/plain"}, 400),  # no payload
    ({"payload": "", "payload_content_type": "text/plain"}, 400),
    ({"payload": "   ", "payload_content_type": "text/plain"}, 400),
    ({"payload": "p", "payload_content_type": "text/html"}, 400),
    ({"payload": "p", "payload_content_type": "text/plain; charset=latin-1"}, 400),
    ({"payload": "p", "payload_content_type": "text/plain", "payload_content_encoding": "base64"}, 400),
    ({"payload": "AAAA", "payload_content_type": "application/octet-stream"}, 400),  # encoding required
    (
        {
            "payload": "not base64!",
            "payload_content_type": "application/octet-stream",
            "payload_content_encoding": "base64",
        },
        400,
    ),
    ({"payload": "AAAA", "payload_content_type": "application/octet-stream", "payload_content_encoding": "hex"}, 400),
    # Outside the alphabet, which Barbican drops and stores what is left: refused here (api-compatibility.md).
    *(
        (
            {"payload": bad, "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"},
            400,
        )
        for bad in ("AA!AA", "-_-_", "AAA")
    ),
    ({"expiration": "2001-01-01T00:00:00"}, 400),
    ({"expiration": "tomorrow"}, 400),
    ({"transport_key_needed": "true"}, 400),
    ({"payload": 5, "payload_content_type": "text/plain"}, 400),
]


@pytest.mark.parametrize("body,status", BAD_BODIES)
def test_invalid_bodies_are_400_and_store_nothing(api: Api, body: dict[str, object], status: int) -> None:
    r = api.post("/v1/secrets", json=body)
    assert r.status_code == status
    error = r.json()
    assert set(error) == {"code", "title", "description"} and error["code"] == status
    assert api.get("/v1/secrets").json()["total"] == 0


def test_an_unsupported_content_type_is_refused_in_barbicans_words(api: Api) -> None:
    # Barbican's functional test_secret_create_defaults_bad_content_type_check_message matches this text.
    r = api.post("/v1/secrets", json={"payload": "p", "payload_content_type": "plain-text"})
    assert (r.status_code, r.json()["title"]) == (400, "Bad Request")
    assert r.json()["description"] == (
        "Provided object does not match schema 'Secret': payload_content_type is not one of ['text/plain', "
        "'text/plain;charset=utf-8', 'text/plain; charset=utf-8', 'application/octet-stream', "
        "'application/pkcs8']. Invalid property: 'payload_content_type'"
    )
    assert api.get("/v1/secrets").json()["total"] == 0


def test_payload_content_encoding_without_payload_is_accepted_as_barbican_does(api: Api) -> None:
    r = api.post("/v1/secrets", json={"secret_type": "opaque", "payload_content_encoding": "base64"})
    assert r.status_code == 201, r.text
    sid = r.json()["secret_ref"].rsplit("/", 1)[1]
    assert "content_types" not in api.get(f"/v1/secrets/{sid}").json()
    put = api.put(
        f"/v1/secrets/{sid}",
        content=b64(b"later").encode(),
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "base64"},
    )
    assert put.status_code == 204
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"later"
    # The encoding is still checked: only "base64" is one.
    r = api.post("/v1/secrets", json={"payload_content_encoding": "hex"})
    assert r.status_code == 400
    assert api.get("/v1/secrets").json()["total"] == 1


def test_line_wrapped_base64_is_decoded_as_one(api: Api) -> None:
    key = bytes(range(200))
    wrapped = base64.encodebytes(key).decode()  # 76-character lines, as `base64` and PEM bodies write it
    assert "\n" in wrapped.strip()
    sid = api.create_secret(
        payload=wrapped, payload_content_type="application/octet-stream", payload_content_encoding="base64"
    )
    assert api.get(f"/v1/secrets/{sid}/payload").content == key
    later = api.create_secret(name="two-step")
    headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "base64"}
    assert api.put(f"/v1/secrets/{later}", content=wrapped.encode(), headers=headers).status_code == 204
    assert api.get(f"/v1/secrets/{later}/payload").content == key


def test_unknown_keys_are_ignored(api: Api) -> None:
    assert api.post("/v1/secrets", json={"name": "n", "colour": "blue"}).status_code == 201


def test_body_errors(api: Api) -> None:
    r = api.post("/v1/secrets", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["description"]) == (400, "Malformed JSON")
    r = api.post("/v1/secrets", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    r = api.post("/v1/secrets", content=b"[]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_size_limits_are_413(api: Api) -> None:
    too_big_payload = {"payload": "x" * 20001, "payload_content_type": "text/plain"}
    assert api.post("/v1/secrets", json=too_big_payload).status_code == 413
    too_big_body = {"name": "n", "filler": "y" * 30000}
    r = api.post("/v1/secrets", json=too_big_body)
    assert r.status_code == 413
    assert r.json()["description"] == "Provided information too large to process"
    assert api.get("/v1/secrets").json()["total"] == 0


# --- read ----------------------------------------------------------------------------------------------


def test_metadata_without_payload_has_no_content_types(api: Api) -> None:
    sid = api.create_secret(name="empty")
    body = api.get(f"/v1/secrets/{sid}").json()
    assert set(body) == SECRET_KEYS
    r = api.get(f"/v1/secrets/{sid}/payload")
    assert (r.status_code, r.json()["description"]) == (404, "Not Found. Sorry but your secret has no payload.")


@pytest.mark.parametrize(
    "accept,status,content_type",
    [
        (None, 200, "application/octet-stream"),
        ("*/*", 200, "text/plain"),
        ("text/plain", 200, "text/plain"),
        ("text/plain;charset=utf-8", 200, "text/plain;charset=utf-8"),
        ("application/octet-stream", 200, "application/octet-stream"),
        ("application/pkcs8", 200, "application/pkcs8"),
        ("application/json", 406, None),
        ("text/plain, application/octet-stream", 406, None),
        ("text/plain;q=0.9", 406, None),
    ],
)
def test_payload_accept_negotiation(api: Api, accept: str | None, status: int, content_type: str | None) -> None:
    sid = api.create_secret(payload="value", payload_content_type="text/plain")
    headers = {"Accept": accept} if accept is not None else {}
    r = api.client.get(f"/v1/secrets/{sid}/payload", headers={**api.headers(), **headers})
    if accept is None:  # the test client adds its own Accept: send none at all
        r = api.client.get(f"/v1/secrets/{sid}/payload", headers={**api.headers(), "Accept": ""})
    assert r.status_code == status
    if status == 200:
        assert r.content == b"value"
        assert r.headers["content-type"] == content_type


def test_binary_payload_as_text_is_406(api: Api) -> None:
    sid = binary(api, b"\xff\xfe\xfd")
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "text/plain"}).status_code == 406
    assert (
        api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/octet-stream"}).content == b"\xff\xfe\xfd"
    )


def test_deprecated_payload_through_the_secret_url(api: Api) -> None:
    sid = api.create_secret(payload="old style", payload_content_type="text/plain")
    r = api.get(f"/v1/secrets/{sid}", headers={"Accept": "text/plain"})
    assert (r.status_code, r.content) == (200, b"old style")
    assert api.get(f"/v1/secrets/{sid}", headers={"Accept": "*/*"}).json()["name"] is None
    assert api.get(f"/v1/secrets/{sid}", headers={"Accept": "application/json"}).status_code == 200


@pytest.mark.parametrize(
    "bad_id",
    ["not-a-uuid", "C532843B-DA8A-4A7C-B2F5-F1AB04A57665", "c532843b-da8a-1a7c-b2f5-f1ab04a57665", "0" * 36],
)
def test_invalid_ids_are_404(api: Api, bad_id: str) -> None:
    for path in (f"/v1/secrets/{bad_id}", f"/v1/secrets/{bad_id}/payload"):
        r = api.get(path)
        assert (r.status_code, r.json()["description"]) == (404, "Not Found. Provided secret id is invalid.")


def test_another_projects_secret_looks_missing(api: Api) -> None:
    sid = api.create_secret(name="mine", payload="p", payload_content_type="text/plain")
    other = api.other_project()
    missing = "4f1c1d7e-3b0a-4d4e-9a53-2c1b9e0f6a7d"
    for method, path, kwargs in [
        ("GET", "/v1/secrets/{}", {}),
        ("GET", "/v1/secrets/{}/payload", {}),
        ("PUT", "/v1/secrets/{}", {"content": b"x", "headers": {"Content-Type": "text/plain"}}),
        ("DELETE", "/v1/secrets/{}", {}),
        ("GET", "/v1/secrets/{}/metadata", {}),
        ("GET", "/v1/secrets/{}/consumers", {}),
    ]:
        theirs = other.request(method, path.format(sid), **kwargs)
        nothing = other.request(method, path.format(missing), **kwargs)
        assert theirs.status_code == nothing.status_code == 404, (method, path)
        assert theirs.json() == nothing.json()
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"p"


def test_expired_secrets_are_gone_from_reads_and_lists(clocked_api: Api, clock: MovableClock) -> None:
    api = clocked_api
    sid = api.create_secret(name="brief", payload="p", payload_content_type="text/plain", expiration=clock.iso_in(60))
    keep = api.create_secret(name="keep")
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 200
    clock.advance(59)
    assert api.get(f"/v1/secrets/{sid}").status_code == 200
    clock.advance(1)  # expiration <= now: expired
    assert api.get(f"/v1/secrets/{sid}").status_code == 404
    assert api.get(f"/v1/secrets/{sid}/payload").status_code == 404
    listed = api.get("/v1/secrets").json()
    assert [s["secret_ref"].rsplit("/", 1)[1] for s in listed["secrets"]] == [keep]


# --- two-step ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type,encoding,body,stored",
    [
        ("text/plain", None, "two\nstep ✓".encode(), "two\nstep ✓".encode()),
        ("text/plain; charset=utf-8", None, b"x", b"x"),
        ("application/octet-stream", None, bytes(range(256)), bytes(range(256))),
        ("application/octet-stream", "base64", base64.b64encode(b"\x00\x01"), b"\x00\x01"),
    ],
)
def test_two_step_put(api: Api, content_type: str, encoding: str | None, body: bytes, stored: bytes) -> None:
    sid = api.create_secret(name="later")
    headers = {"Content-Type": content_type, **({"Content-Encoding": encoding} if encoding else {})}
    r = api.put(f"/v1/secrets/{sid}", content=body, headers=headers)
    assert (r.status_code, r.content) == (204, b"")
    assert api.get(f"/v1/secrets/{sid}/payload", headers={"Accept": "application/octet-stream"}).content == stored
    again = api.put(f"/v1/secrets/{sid}", content=b"other", headers={"Content-Type": "text/plain"})
    assert (again.status_code, again.json()["description"]) == (409, "Secret already has data, cannot modify it.")


def test_a_put_on_a_secret_with_a_payload_is_409_before_its_body_is_read(api: Api) -> None:
    # Barbican's test_secret_put_when_payload_already_exists PUTs text that is not base64 with
    # Content-Encoding: base64 and expects 409, not the 400 that the body alone would earn.
    sid = api.create_secret(
        payload=b64(b"k"), payload_content_type="application/octet-stream", payload_content_encoding="base64"
    )
    for headers, body in [
        ({"Content-Type": "application/octet-stream", "Content-Encoding": "base64"}, b"not base64 at all!"),
        ({"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}, b"x"),
        ({"Content-Type": "text/plain"}, b"\xff\xfe not UTF-8"),
    ]:
        r = api.put(f"/v1/secrets/{sid}", content=body, headers=headers)
        assert (r.status_code, r.json()["description"]) == (409, "Secret already has data, cannot modify it.")
    assert api.get(f"/v1/secrets/{sid}/payload").content == b"k"
    # What Barbican checks before its 409 still comes first: the content type (415) and an empty body (400).
    assert api.put(f"/v1/secrets/{sid}", content=b"x", headers={"Content-Type": "application/json"}).status_code == 415
    assert api.put(f"/v1/secrets/{sid}", content=b"", headers={"Content-Type": "text/plain"}).status_code == 400


@pytest.mark.parametrize(
    "headers,body,status",
    [
        ({"Content-Type": "application/json"}, b'"x"', 415),
        ({}, b"x", 415),
        ({"Content-Type": "text/plain"}, b"", 400),
        ({"Content-Type": "application/octet-stream"}, b"x" * 20001, 413),
        ({"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}, b"x", 400),
        ({"Content-Type": "application/octet-stream", "Content-Encoding": "base64"}, b"!!", 400),
    ],
)
def test_two_step_put_errors(api: Api, headers: dict[str, str], body: bytes, status: int) -> None:
    sid = api.create_secret(name="later")
    r = api.client.put(f"/v1/secrets/{sid}", content=body, headers={**api.headers(), **headers})
    assert r.status_code == status
    assert "content_types" not in api.get(f"/v1/secrets/{sid}").json()


# --- delete --------------------------------------------------------------------------------------------


def test_delete(api: Api) -> None:
    sid = api.create_secret(name="bye", payload="p", payload_content_type="text/plain")
    assert api.delete(f"/v1/secrets/{sid}").status_code == 204
    assert api.get(f"/v1/secrets/{sid}").status_code == 404
    assert api.delete(f"/v1/secrets/{sid}").status_code == 404


def test_delete_with_consumers_by_microversion(api: Api) -> None:
    consumer = {"service": "image", "resource_type": "image", "resource_id": "i-1"}
    for version, force, expected in [
        ("1.2", None, 400),
        ("1.2", "false", 400),
        ("1.2", "maybe", 400),
        ("1.2", "true", 204),
        ("1.1", None, 204),
        ("1.0", None, 204),
    ]:
        sid = api.create_secret(name="used")
        assert api.post(f"/v1/secrets/{sid}/consumers", json=consumer).status_code == 200
        query = f"?force={force}" if force else ""
        r = api.at(version).delete(f"/v1/secrets/{sid}{query}")
        assert r.status_code == expected, (version, force)
        if expected == 400 and force != "maybe":
            assert r.json()["description"] == (
                "Secret deletion issue seen - Secret cannot be deleted as it has consumers."
            )
