"""donjon's Castellan driver, loaded by Castellan itself: ``[key_manager] backend = donjon`` and
``castellan.key_manager.API(conf)``, against a live donjon (dev auth: the context's project)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from castellan import key_manager
from castellan.common import exception as castellan_errors
from castellan.common.objects import opaque_data, passphrase, private_key, public_key, symmetric_key
from castellan.key_manager.barbican_key_manager import BarbicanKeyManager
from cryptography.hazmat.primitives import serialization
from oslo_config import cfg

from donjon.client._http import BarbicanAPI, DevAuth
from donjon.client.castellan_driver import DonjonCastellanKeyManager
from tests.live_server import LiveServer
from tests.test_castellan import DevContext

pytestmark = pytest.mark.live


@pytest.fixture
def conf(live_server: LiveServer) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="castellan-donjon", default_config_files=[], default_config_dirs=[])
    conf.register_opts(key_manager.key_manager_opts, group="key_manager")
    conf.set_override("backend", "donjon", group="key_manager")
    return conf


@pytest.fixture
def api(conf: cfg.ConfigOpts, live_server: LiveServer) -> key_manager.key_manager.KeyManager:
    km = key_manager.API(conf)
    conf.set_override("url", live_server.url, group="donjon")
    conf.set_override("auth", "dev", group="donjon")
    return km


@pytest.fixture
def context() -> DevContext:
    return DevContext(f"castellan-donjon-{uuid.uuid4()}")


def test_castellan_loads_the_driver_by_entry_point(api: key_manager.key_manager.KeyManager) -> None:
    assert isinstance(api, DonjonCastellanKeyManager)
    assert api.list_options_for_discovery()[0][0] == "donjon"


def test_store_and_fetch_a_key(api: key_manager.key_manager.KeyManager, context: DevContext) -> None:
    key = symmetric_key.SymmetricKey("AES", 256, os.urandom(32), name="volume")
    key_id = api.store(context, key)
    fetched = api.get(context, key_id)
    assert isinstance(fetched, symmetric_key.SymmetricKey)
    assert fetched.get_encoded() == key.get_encoded()
    assert (fetched.algorithm.lower(), fetched.bit_length, fetched.name, fetched.id) == ("aes", 256, "volume", key_id)
    meta = api.get(context, key_id, metadata_only=True)
    assert meta.get_encoded() is None and meta.name == "volume"


def test_create_key_and_pair(api: key_manager.key_manager.KeyManager, context: DevContext) -> None:
    key_id = api.create_key(context, algorithm="AES", length=128, name="gen")
    assert len(api.get(context, key_id).get_encoded()) == 16
    private_id, public_id = api.create_key_pair(context, algorithm="RSA", length=2048)
    private = api.get(context, private_id)
    public = api.get(context, public_id)
    assert isinstance(private, private_key.PrivateKey) and isinstance(public, public_key.PublicKey)
    loaded = serialization.load_der_private_key(private.get_encoded(), password=None)
    spki = loaded.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki == public.get_encoded()


def test_expiration_reaches_the_server(
    api: key_manager.key_manager.KeyManager, context: DevContext, live_server: LiveServer
) -> None:
    # Castellan passes what its caller gave: an ISO 8601 string (UTC when it has no offset) or a datetime.
    server = BarbicanAPI(live_server.url, auth=DevAuth(context.project_id))
    stored = api.store(context, passphrase.Passphrase(b"until 2030"), expiration="2030-01-01T00:00:00")
    assert server.get_secret(stored)["expiration"].startswith("2030-01-01T00:00:00")
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    key_id = api.create_key(context, algorithm="AES", length=256, expiration=in_an_hour)
    expiration = datetime.fromisoformat(server.get_secret(key_id)["expiration"]).replace(tzinfo=UTC)  # UTC, as Barbican
    assert abs((expiration - in_an_hour).total_seconds()) < 1
    private_id, public_id = api.create_key_pair(context, algorithm="RSA", length=2048, expiration=in_an_hour)
    assert server.get_secret(private_id)["expiration"] and server.get_secret(public_id)["expiration"]
    short = api.store(context, opaque_data.OpaqueData(b"brief"), expiration=in_an_hour)
    assert api.get(context, short).get_encoded() == b"brief"
    live_server.expire_now(short)  # its expiration passes (the server's clock is the machine's: no waiting)
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        api.get(context, short)
    with pytest.raises(castellan_errors.KeyManagerError):
        api.store(context, opaque_data.OpaqueData(b"x"), expiration="next tuesday")
    server.close()


def test_list_delete_consumers_and_errors(api: key_manager.key_manager.KeyManager, context: DevContext) -> None:
    pw = api.store(context, passphrase.Passphrase(b"p4ss", name="pw"))
    blob = api.store(context, opaque_data.OpaqueData(b"\x00\x01", name="blob"))
    assert {o.id for o in api.list(context)} == {pw, blob}
    [only] = api.list(context, object_type=passphrase.Passphrase)
    assert (only.id, only.get_encoded()) == (pw, b"p4ss")
    consumer = {"service": "cinder", "resource_type": "volume", "resource_id": "vol-1"}
    api.add_consumer(context, blob, consumer)
    with pytest.raises(castellan_errors.KeyManagerError):
        api.delete(context, blob)
    api.remove_consumer(context, blob, consumer)
    api.delete(context, blob)
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        api.get(context, blob)
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        api.get(DevContext(f"stranger-{uuid.uuid4()}"), pw)


def test_barbican_driver_reads_what_the_donjon_driver_stored(
    api: key_manager.key_manager.KeyManager, context: DevContext, live_server: LiveServer
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_id = api.store(context, public_key.PublicKey("EC", 256, der, name="pub"))
    conf = cfg.ConfigOpts()
    conf([], project="castellan-test", default_config_files=[], default_config_dirs=[])
    barbican = BarbicanKeyManager(conf)
    conf.set_override("barbican_endpoint", live_server.url, group="barbican")
    fetched = barbican.get(context, key_id)
    assert isinstance(fetched, public_key.PublicKey) and fetched.get_encoded() == der
