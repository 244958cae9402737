"""Payloads routed to external secret stores (real OpenBao KV and PyKMIP) through the API, on three databases.

Each secret is read from the store its row names; deleting, reaping or purging it destroys the external
object; a store outage is a 503 with nothing half-written.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings, StoreConfig
from donjon.services.purge import purge_project
from donjon.services.stores import StoreRegistry
from donjon.storage.database import Database
from donjon.storage.tables import secrets
from donjon.stores import PayloadInfo, PayloadMissing, StoredPayload
from tests.clock import MovableClock
from tests.components.kmip import KmipServer
from tests.components.openbao import OpenBao
from tests.conftest import BASE, Api

ADMIN = {"X-Roles": "admin"}


@pytest.fixture
def client(
    openbao: OpenBao,  # noqa: F811
    kmip_server: KmipServer,  # noqa: F811
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: MovableClock,
) -> Iterator[TestClient]:
    monkeypatch.setenv("DONJON_VAULT_TOKEN", openbao.token)
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(tmp_path / "root.key")}),
        stores={
            "vault-kv": StoreConfig(type="vault", options={"url": openbao.url, "prefix": "routing"}),
            "hsm": StoreConfig(type="kmip", options=kmip_server.options()),
        },
        orders={"poll_seconds": 0.1},
        lifecycle={"run_in_server": False},
    )
    with TestClient(create_app(settings, clock=clock), base_url=BASE) as test_client:
        yield test_client


def project_in(client: TestClient, store: str) -> Api:
    api = Api(client, f"project-{uuid.uuid4()}")
    refs = {s["name"]: s["secret_store_ref"] for s in api.get("/v1/secret-stores").json()["secret_stores"]}
    if store != "database":
        assert api.post(f"{refs[store]}/preferred", headers=ADMIN).status_code == 204
    return api


def row(settings_url: str, secret_id: str) -> Any:
    db = Database(settings_url, pool_size=1)
    try:
        with db.read() as conn:
            return conn.execute(select(secrets).where(secrets.c.id == secret_id)).first()
    finally:
        db.dispose()


def test_a_preferred_vault_store_holds_the_payload(client: TestClient, openbao: OpenBao, database_url: str) -> None:  # noqa: F811
    api = project_in(client, "vault-kv")
    payload = bytes(range(256))
    secret_id = api.create_secret(
        payload=base64.b64encode(payload).decode(),
        payload_content_type="application/octet-stream",
        payload_content_encoding="base64",
    )
    stored = row(database_url, secret_id)
    assert (stored.store, stored.ciphertext, stored.kek_id) == ("vault-kv", None, None)
    assert stored.store_ref == f"routing/{api.project_id}/{secret_id}"
    assert openbao.kv_has(stored.store_ref)
    r = api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "application/octet-stream"})
    assert (r.status_code, r.content) == (200, payload)

    assert api.delete(f"/v1/secrets/{secret_id}").status_code == 204
    assert not openbao.kv_has(stored.store_ref), "the KV object outlived its secret"
    assert row(database_url, secret_id) is None


def test_kmip_store_keeps_typed_objects(client: TestClient, kmip_server: KmipServer, database_url: str) -> None:  # noqa: F811
    api = project_in(client, "hsm")
    key = base64.b64encode(b"k" * 32).decode()
    secret_id = api.create_secret(
        payload=key,
        payload_content_type="application/octet-stream",
        payload_content_encoding="base64",
        secret_type="symmetric",
        algorithm="aes",
        bit_length=256,
    )
    stored = row(database_url, secret_id)
    assert stored.store == "hsm" and stored.ciphertext is None
    r = api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "application/octet-stream"})
    assert r.content == b"k" * 32
    store = client.app.state.ctx.secret_stores.registry.store("hsm")  # type: ignore[attr-defined]
    info = PayloadInfo(secret_id, api.project_id, "symmetric", "aes", 256)
    assert store.get(info, StoredPayload(ref=stored.store_ref)) == b"k" * 32
    assert api.delete(f"/v1/secrets/{secret_id}").status_code == 204
    with pytest.raises(PayloadMissing):
        store.get(info, StoredPayload(ref=stored.store_ref))


def test_two_step_put_and_orders_go_to_the_preferred_store(client: TestClient, database_url: str) -> None:
    api = project_in(client, "vault-kv")
    secret_id = api.create_secret(name="later")
    r = api.put(f"/v1/secrets/{secret_id}", content=b"second step", headers={"Content-Type": "text/plain"})
    assert r.status_code == 204, r.text
    assert row(database_url, secret_id).store == "vault-kv"
    assert api.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "text/plain"}).text == "second step"
    again = api.put(f"/v1/secrets/{secret_id}", content=b"x", headers={"Content-Type": "text/plain"})
    assert again.status_code == 409

    order = api.post("/v1/orders", json={"type": "key", "meta": {"algorithm": "aes", "bit_length": 256}})
    assert order.status_code == 202
    deadline = time.monotonic() + 30
    while (done := api.get(order.json()["order_ref"]).json())["status"] == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert done["status"] == "ACTIVE", done
    generated = done["secret_ref"].rsplit("/", 1)[1]
    assert row(database_url, generated).store == "vault-kv"
    r = api.get(f"{done['secret_ref']}/payload", headers={"Accept": "application/octet-stream"})
    assert len(r.content) == 32


def test_limited_secrets_stay_in_the_database_and_versions_are_refused(client: TestClient, database_url: str) -> None:
    api = project_in(client, "vault-kv")
    limited = api.create_secret(payload="once", payload_content_type="text/plain", max_reads=1)
    assert row(database_url, limited).store is None
    external = api.create_secret(payload="v1", payload_content_type="text/plain")
    r = api.post(f"/v1/secrets/{external}/versions", json={"payload": "v2", "payload_content_type": "text/plain"})
    assert r.status_code == 409
    assert "database store only" in r.json()["description"]


def test_wrapped_hand_off_of_an_externally_stored_secret(client: TestClient) -> None:
    api = project_in(client, "vault-kv")
    secret_id = api.create_secret(payload="boot secret", payload_content_type="text/plain")
    wrapped = api.post(f"/v1/secrets/{secret_id}/wrap", json={"ttl": 60})
    assert wrapped.status_code in (200, 201), wrapped.text
    token = wrapped.json()["wrap_token"]
    r = client.post("/v1/unwrap", headers={"X-Wrap-Token": token, "Accept": "text/plain"})
    assert (r.status_code, r.text) == (200, "boot secret")
    assert client.post("/v1/unwrap", headers={"X-Wrap-Token": token}).status_code == 404


def test_the_reaper_and_purge_destroy_external_objects(
    client: TestClient,
    openbao: OpenBao,  # noqa: F811
    database_url: str,
    clock: MovableClock,
) -> None:
    api = project_in(client, "vault-kv")
    soon = clock.iso_in(10)
    expiring = api.create_secret(payload="short-lived", payload_content_type="text/plain", expiration=soon)
    kept = api.create_secret(payload="kept", payload_content_type="text/plain")
    expiring_ref, kept_ref = row(database_url, expiring).store_ref, row(database_url, kept).store_ref
    clock.advance(10)
    context = client.app.state.ctx  # type: ignore[attr-defined]
    assert context.expiry.reap_once().expired >= 1
    assert not openbao.kv_has(expiring_ref)
    assert openbao.kv_has(kept_ref)

    db = Database(database_url, pool_size=1)
    try:
        counts = purge_project(db, api.project_id, context.secret_stores.registry)
    finally:
        db.dispose()
    assert counts["external_objects"] == 1
    assert not openbao.kv_has(kept_ref)


def test_a_store_outage_does_not_hold_back_the_reaper(
    client: TestClient,
    openbao: OpenBao,  # noqa: F811
    database_url: str,
    clock: MovableClock,
) -> None:
    in_vault, in_database = project_in(client, "vault-kv"), project_in(client, "database")
    soon = clock.iso_in(10)
    vault_secret = in_vault.create_secret(payload="v", payload_content_type="text/plain", expiration=soon)
    database_secret = in_database.create_secret(payload="d", payload_content_type="text/plain", expiration=soon)
    vault_ref = row(database_url, vault_secret).store_ref
    clock.advance(10)
    context = client.app.state.ctx  # type: ignore[attr-defined]
    context.secret_stores.registry.store("vault-kv").close()  # the store goes down

    report = context.expiry.reap_once()
    # (Other modules' expired secrets of stores this app does not configure wait too: the database is shared.)
    assert "vault-kv" in report.unavailable_stores
    assert row(database_url, database_secret) is None, "the other secrets were not reaped"
    assert row(database_url, vault_secret) is not None and openbao.kv_has(vault_ref)

    # The store is back (a new connection, as after a restart): the next pass reaps what waited.
    settings = context.settings
    registry = StoreRegistry.open(settings.configured_stores(), settings.default_store)
    context.expiry._payloads.registry = registry
    try:
        report = context.expiry.reap_once()
    finally:
        registry.close()
    assert "vault-kv" not in report.unavailable_stores and report.expired >= 1
    assert row(database_url, vault_secret) is None and not openbao.kv_has(vault_ref)


def test_a_store_outage_is_503_and_nothing_is_written(client: TestClient) -> None:
    api = project_in(client, "vault-kv")
    kept = api.create_secret(payload="before", payload_content_type="text/plain")
    client.app.state.ctx.secret_stores.registry.store("vault-kv").close()  # type: ignore[attr-defined]
    r = api.post("/v1/secrets", json={"payload": "during", "payload_content_type": "text/plain"})
    assert r.status_code == 503
    assert "vault secret store" in r.json()["description"] and "during" not in r.text
    assert api.get(f"/v1/secrets/{kept}/payload", headers={"Accept": "text/plain"}).status_code == 503
    assert api.delete(f"/v1/secrets/{kept}").status_code == 503
    assert [s["secret_ref"].rsplit("/", 1)[1] for s in api.get("/v1/secrets").json()["secrets"]] == [kept]
