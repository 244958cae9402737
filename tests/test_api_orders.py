"""Orders (spec §6) through the API on three databases: generation, validation, ERROR outcomes, get/list/delete.

The app's own order worker processes the orders, as in a server: a test queues an order and polls it.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from donjon.storage.database import Database
from donjon.storage.tables import orders
from tests.conftest import Api


def wait_for(api: Api, order_ref: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(order_ref)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] != "PENDING":
            return body
        assert time.monotonic() < deadline, f"order still PENDING after {timeout}s"
        time.sleep(0.05)


def order(api: Api, type_: str, **meta: Any) -> dict[str, Any]:
    r = api.post("/v1/orders", json={"type": type_, "meta": meta})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == r.json()["order_ref"]
    return wait_for(api, r.json()["order_ref"])


def payload(api: Api, ref: str, accept: str = "application/octet-stream") -> bytes:
    r = api.get(f"{ref}/payload", headers={"Accept": accept})
    assert r.status_code == 200, r.text
    return bytes(r.content)


def container_secrets(api: Api, container_ref: str) -> dict[str, str]:
    r = api.get(container_ref)
    assert r.status_code == 200, r.text
    return {s["name"]: s["secret_ref"] for s in r.json()["secret_refs"]}


@pytest.mark.parametrize(
    ("type_", "meta", "status", "ref_key"),
    [
        ("key", {"algorithm": "aes", "bit_length": 256}, "ACTIVE", "secret_ref"),
        ("asymmetric", {"algorithm": "ec", "bit_length": 256}, "ACTIVE", "container_ref"),
        ("asymmetric", {"algorithm": "rsa", "bit_length": 2048}, "ACTIVE", "container_ref"),
        ("password", {"length": 24}, "ACTIVE", "secret_ref"),
        ("key", {"algorithm": "blowfish", "bit_length": 128}, "ERROR", "error_status_code"),
    ],
)
def test_an_order_is_done_when_its_post_answers(
    api: Api, type_: str, meta: dict[str, Any], status: str, ref_key: str
) -> None:
    # Barbican's clients and functional tests GET an order once after the POST and expect it final: Barbican
    # runs the order inside the request. The answer is still Barbican's 202 with only the order_ref.
    r = api.post("/v1/orders", json={"type": type_, "meta": meta})
    assert r.status_code == 202, r.text
    assert set(r.json()) == {"order_ref"}
    first = api.get(r.json()["order_ref"])
    assert first.status_code == 200
    assert first.json()["status"] == status
    assert ref_key in first.json()
    if status == "ACTIVE":
        assert api.get(first.json()[ref_key]).status_code == 200


@pytest.mark.parametrize(
    ("algorithm", "bits", "mode"),
    [("aes", 128, "cbc"), ("aes", 192, None), ("aes", 256, "gcm"), ("aes", 512, "xts"), ("hmacsha256", 256, None)],
)
def test_key_order_generates_a_symmetric_secret(api: Api, algorithm: str, bits: int, mode: str | None) -> None:
    meta: dict[str, Any] = {"name": "generated", "algorithm": algorithm, "bit_length": bits}
    if mode:
        meta["mode"] = mode
    done = order(api, "key", **meta)
    assert done["status"] == "ACTIVE"
    assert done["sub_status"] == "Unknown"
    assert "container_ref" not in done and "error_status_code" not in done
    # The meta comes back as stored: what was sent plus name/expiration and the default content type.
    assert done["meta"] == {**meta, "expiration": None, "payload_content_type": "application/octet-stream"}

    secret = api.get(done["secret_ref"]).json()
    assert (secret["secret_type"], secret["algorithm"], secret["bit_length"]) == ("symmetric", algorithm, bits)
    assert secret["name"] == "generated"
    assert secret["mode"] == mode
    assert secret["creator_id"] == api.user_id
    key = payload(api, done["secret_ref"])
    assert len(key) == bits // 8
    assert key != payload(api, order(api, "key", **meta)["secret_ref"]), "two orders gave the same key"


def test_key_order_carries_name_expiration_and_content_type(api: Api) -> None:
    done = order(
        api,
        "key",
        name="db key",
        algorithm="aes",
        bit_length=256,
        expiration="2099-01-01T00:00:00Z",
        payload_content_type="application/octet-stream",
    )
    secret = api.get(done["secret_ref"]).json()
    assert secret["name"] == "db key"
    assert secret["expiration"].startswith("2099-01-01T00:00:00")
    assert secret["content_types"] == {"default": "application/octet-stream"}


@pytest.mark.parametrize(("algorithm", "bits"), [("rsa", 2048), ("ec", 256), ("ec", 384)])
def test_asymmetric_order_generates_a_key_pair_in_a_container(api: Api, algorithm: str, bits: int) -> None:
    done = order(api, "asymmetric", name="pair", algorithm=algorithm, bit_length=bits)
    assert done["status"] == "ACTIVE"
    assert "secret_ref" not in done
    container = api.get(done["container_ref"]).json()
    assert container["type"] == algorithm
    assert container["name"] == "pair"
    refs = container_secrets(api, done["container_ref"])
    assert set(refs) == {"private_key", "public_key"}

    private = serialization.load_pem_private_key(payload(api, refs["private_key"]), password=None)
    public = serialization.load_pem_public_key(payload(api, refs["public_key"]))
    assert private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if algorithm == "rsa":
        assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == bits
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.key_size == bits
    assert api.get(refs["private_key"]).json()["secret_type"] == "private"
    assert api.get(refs["public_key"]).json()["secret_type"] == "public"


@pytest.mark.parametrize("field", ["passphrase", "pass_phrase"])
def test_asymmetric_order_with_a_passphrase_never_shows_it(api: Api, settings: Any, field: str) -> None:
    phrase = f"correct horse battery {field}"
    r = api.post(
        "/v1/orders", json={"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 2048, field: phrase}}
    )
    assert r.status_code == 202, r.text
    order_id = r.json()["order_ref"].rsplit("/", 1)[1]

    # Neither the stored row nor any representation of the order holds the passphrase in clear.
    db = Database(settings.database_url, pool_size=1)
    try:
        with db.read() as conn:
            row = conn.execute(select(orders).where(orders.c.id == order_id)).one()
    finally:
        db.dispose()
    assert phrase not in row.meta
    assert row.sealed_params is not None and phrase.encode() not in row.sealed_params

    done = wait_for(api, r.json()["order_ref"])
    assert done["status"] == "ACTIVE"
    assert phrase not in str(done)
    assert phrase not in api.get("/v1/orders").text
    refs = container_secrets(api, done["container_ref"])
    assert set(refs) == {"private_key", "public_key", "private_key_passphrase"}
    assert payload(api, refs["private_key_passphrase"], "text/plain").decode() == phrase
    pem = payload(api, refs["private_key"])
    assert b"ENCRYPTED PRIVATE KEY" in pem
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    assert isinstance(serialization.load_pem_private_key(pem, password=phrase.encode()), rsa.RSAPrivateKey)


def test_password_order_follows_its_policy(api: Api) -> None:
    done = order(api, "password", name="db password", length=40, character_classes=["digits", "upper"], exclude="0O1I")
    assert done["status"] == "ACTIVE"
    assert done["meta"] == {
        "name": "db password",
        "length": 40,
        "character_classes": ["digits", "upper"],
        "exclude": "0O1I",
        "expiration": None,
    }
    secret = api.get(done["secret_ref"]).json()
    assert secret["secret_type"] == "passphrase"
    assert secret["content_types"] == {"default": "text/plain"}
    value = payload(api, done["secret_ref"], "text/plain").decode()
    assert len(value) == 40
    assert all(c.isdigit() or c.isupper() for c in value)
    assert not set(value) & set("0O1I")
    assert any(c.isdigit() for c in value) and any(c.isupper() for c in value)
    assert value not in str(done)


def test_password_order_defaults(api: Api) -> None:
    done = order(api, "password")
    value = payload(api, done["secret_ref"], "text/plain").decode()
    assert len(value) == 32
    for chars in ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"):
        assert set(value) & set(chars)


def test_password_orders_are_listed_only_when_asked_for(api: Api) -> None:
    # python-barbicanclient raises on an order type it does not know: a plain list never shows them.
    key = order(api, "key", algorithm="aes", bit_length=256)
    password = order(api, "password", length=12)
    plain = api.get("/v1/orders").json()
    assert [o["order_ref"] for o in plain["orders"]] == [key["order_ref"]]
    assert plain["total"] == 1
    asked = api.get("/v1/orders", params={"type": "password"}).json()
    assert [o["order_ref"] for o in asked["orders"]] == [password["order_ref"]]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"meta": {"algorithm": "aes", "bit_length": 256}}, "type"),
        ({"type": "certificate", "meta": {}}, "type"),
        ({"type": "key"}, "meta"),
        ({"type": "key", "meta": "aes"}, "meta"),
        ({"type": "key", "meta": {"bit_length": 256}}, "algorithm"),
        ({"type": "key", "meta": {"algorithm": "aes"}}, "bit_length"),
        ({"type": "key", "meta": {"algorithm": "aes", "bit_length": "256"}}, "bit_length"),
        ({"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "payload": "x"}}, "payload"),
        ({"type": "key", "meta": {"algorithm": "aes", "bit_length": 256, "expiration": "2001-01-01T00:00:00"}}, ""),
        ({"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 2048, "passphrase": ""}}, "passphrase"),
        ({"type": "password", "meta": {"length": 7}}, "length"),
        ({"type": "password", "meta": {"length": True}}, "length"),
        ({"type": "password", "meta": {"character_classes": ["emoji"]}}, "character_classes"),
        ({"type": "password", "meta": {"character_classes": []}}, "character_classes"),
        ({"type": "password", "meta": {"character_classes": ["digits"], "exclude": "0123456789"}}, "excluded"),
    ],
)
def test_invalid_orders_are_refused_before_queueing(api: Api, body: dict[str, Any], fragment: str) -> None:
    r = api.post("/v1/orders", json=body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["code"] == 400 and error["title"] == "Bad Request"
    assert fragment in error["description"]
    assert api.get("/v1/orders", params={"type": "password"}).json()["total"] == 0
    assert api.get("/v1/orders").json()["total"] == 0


def test_bit_length_not_a_multiple_of_8_says_only_not_supported(api: Api) -> None:
    r = api.post("/v1/orders", json={"type": "key", "meta": {"algorithm": "aes", "bit_length": 129}})
    assert r.status_code == 400
    assert r.json()["description"].startswith("Provided field value is not supported")


def test_unsupported_content_type_is_refused(api: Api) -> None:
    meta = {"algorithm": "aes", "bit_length": 256, "payload_content_type": "text/html"}
    r = api.post("/v1/orders", json={"type": "key", "meta": meta})
    assert r.status_code == 400
    # Barbican validates a key order's meta as a secret "within" the order, and says so.
    assert r.json()["description"].startswith(
        "Provided object does not match schema 'Secret' within 'Order': "
        "payload_content_type is not one of ['text/plain'"
    )


@pytest.mark.parametrize(
    ("type_", "meta", "reason"),
    [
        ("key", {"algorithm": "blowfish", "bit_length": 128}, "algorithm 'blowfish'"),
        ("key", {"algorithm": "aes", "bit_length": 136}, "136-bit"),
        ("asymmetric", {"algorithm": "rsa", "bit_length": 1024}, "not 1024"),
        ("asymmetric", {"algorithm": "dsa", "bit_length": 2048}, "'dsa'"),
    ],
)
def test_ungeneratable_orders_end_in_error(api: Api, type_: str, meta: dict[str, Any], reason: str) -> None:
    done = order(api, type_, **meta)
    assert done["status"] == "ERROR"
    assert done["error_status_code"] == "400"
    assert done["error_reason"].startswith("Process TypeOrder issue seen - ")
    assert reason in done["error_reason"]
    assert "Traceback" not in done["error_reason"]
    assert "secret_ref" not in done and "container_ref" not in done and "sub_status" not in done
    assert api.get("/v1/secrets").json()["total"] == 0


def test_get_list_delete_and_project_scoping(api: Api) -> None:
    done = [order(api, "key", name=f"k{i}", algorithm="aes", bit_length=128) for i in range(3)]
    other = api.other_project()
    ref = done[0]["order_ref"]
    assert other.get(ref).status_code == 404
    assert other.delete(ref).status_code == 404
    assert other.get("/v1/orders").json()["total"] == 0

    listed = api.get("/v1/orders", params={"limit": 2}).json()
    assert listed["total"] == 3
    assert [o["order_ref"] for o in listed["orders"]] == [o["order_ref"] for o in done[:2]]
    assert "offset=2" in listed["next"]
    page2 = api.get("/v1/orders", params={"limit": 2, "offset": 2}).json()
    assert [o["order_ref"] for o in page2["orders"]] == [done[2]["order_ref"]]
    assert "previous" in page2
    # `meta` filters on a substring of the stored meta.
    assert [o["order_ref"] for o in api.get("/v1/orders", params={"meta": '"k1"'}).json()["orders"]] == [
        done[1]["order_ref"]
    ]

    # Deleting an order keeps what it generated.
    assert api.delete(ref).status_code == 204
    assert api.get(ref).status_code == 404
    assert api.delete(ref).status_code == 404
    assert api.get(done[0]["secret_ref"]).status_code == 200
    assert api.get("/v1/orders").json()["total"] == 2


def test_orders_cannot_be_updated(api: Api) -> None:
    r = api.put("/v1/orders", json={})
    assert r.status_code == 405
    assert r.json()["description"] == "Order update is not supported."


def test_orders_need_the_member_role(api: Api) -> None:
    # Barbican's secure-RBAC defaults: every order rule asks for member, readers see no orders at all.
    done = order(api, "key", algorithm="aes", bit_length=128)
    reader = {"X-Roles": "reader"}
    r = api.post("/v1/orders", json={"type": "key", "meta": {"algorithm": "aes", "bit_length": 128}}, headers=reader)
    assert r.status_code == 403
    assert api.get(done["order_ref"], headers=reader).status_code == 403
    assert api.get("/v1/orders", headers=reader).status_code == 403
    assert api.delete(done["order_ref"], headers=reader).status_code == 403
    assert api.get(done["order_ref"], headers={"X-Roles": "member"}).status_code == 200


def test_generated_key_reads_as_base64_in_the_secret_create_format(api: Api) -> None:
    # What a client would re-upload: the generated bytes round-trip through a one-step create.
    key = payload(api, order(api, "key", algorithm="aes", bit_length=256)["secret_ref"])
    copy = api.create_secret(
        payload=base64.b64encode(key).decode(),
        payload_content_type="application/octet-stream",
        payload_content_encoding="base64",
    )
    assert payload(api, f"/v1/secrets/{copy}") == key
