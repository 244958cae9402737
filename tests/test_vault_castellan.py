"""Castellan's VaultKeyManager, unmodified from PyPI, against donjon's Vault API (token mode, KV v2 at ``secret``).

Castellan is configured as an OpenStack service would be: ``[key_manager] backend = vault`` and the
``[vault]`` options (``vault_url``, ``root_token_id``, ``kv_mountpoint``, ``kv_version = 2``), through
``castellan.options.set_defaults`` and ``castellan.key_manager.API``. Its requests are plain KV v2 ones with
``X-Vault-Token``: ``POST secret/data/<id>`` ``{"data": {...}}``, ``GET secret/data/<id>``,
``DELETE secret/data/<id>`` (a soft delete of the latest version, after which a read is a 404) and
``GET secret/metadata/?list=true``. Each test runs in its own donjon project, with a donjon token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from castellan import key_manager, options
from castellan.common import exception as castellan_errors
from castellan.common.objects import opaque_data, passphrase, private_key, public_key, symmetric_key
from castellan.key_manager.vault_key_manager import VaultKeyManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oslo_config import cfg

from tests.live_server import LiveServer
from tests.test_vault_clients import donjon_token

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("vault-castellan"), env={"DONJON_AUTH": "token"}, dev=False, workers=1)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def token(server: LiveServer) -> str:
    return donjon_token(server, f"castellan-{uuid.uuid4()}", "member")


def vault_manager(server: LiveServer, token: str) -> Any:
    """``castellan.key_manager.API`` with ``backend = vault``, as a service's configuration file would set it."""
    conf = cfg.ConfigOpts()
    conf([], project="castellan-vault-test", default_config_files=[], default_config_dirs=[])
    options.set_defaults(
        conf,
        backend="vault",
        vault_url=server.url,
        vault_root_token_id=token,
        vault_kv_mountpoint="secret",
        vault_kv_version=2,
    )
    return key_manager.API(conf)


@pytest.fixture
def manager(server: LiveServer, token: str) -> Any:
    km = vault_manager(server, token)
    assert isinstance(km, VaultKeyManager)
    return km


def _kv_read(server: LiveServer, token: str, key_id: str) -> dict[str, Any]:
    """The KV record Castellan wrote, read with a plain Vault request (what bao or hvac would see)."""
    connection = server.connection()
    try:
        connection.request("GET", f"/v1/secret/data/{key_id}", headers={"X-Vault-Token": token})
        answer = connection.getresponse()
        assert answer.status == 200
        body: dict[str, Any] = json.loads(answer.read())
    finally:
        connection.close()
    return body


def test_store_and_get_a_symmetric_key(manager: Any, server: LiveServer, token: str) -> None:
    key = symmetric_key.SymmetricKey("AES", 256, bytes(range(32)), name="volume-key")
    key_id = manager.store(None, key)
    got = manager.get(None, key_id)
    assert isinstance(got, symmetric_key.SymmetricKey)
    assert (got.algorithm, got.bit_length, got.name, got.id) == ("AES", 256, "volume-key", key_id)
    assert got.get_encoded() == bytes(range(32))
    # Castellan's record is an ordinary KV v2 version: hex value, type, algorithm, bit length, name, created.
    record = _kv_read(server, token, key_id)["data"]
    assert record["metadata"]["version"] == 1
    assert record["data"]["type"] == "symmetric" and record["data"]["value"] == bytes(range(32)).hex()


def test_store_and_get_passphrase_and_opaque_data(manager: Any) -> None:
    secret = passphrase.Passphrase(b"correct horse battery staple", name="db")
    blob = opaque_data.OpaqueData(b"\x00\xffbinary\n", name="blob")
    secret_id, blob_id = manager.store(None, secret), manager.store(None, blob)
    got_secret, got_blob = manager.get(None, secret_id), manager.get(None, blob_id)
    assert isinstance(got_secret, passphrase.Passphrase) and got_secret.get_encoded() == secret.get_encoded()
    assert isinstance(got_blob, opaque_data.OpaqueData) and got_blob.get_encoded() == b"\x00\xffbinary\n"
    assert (got_secret.name, got_blob.name) == ("db", "blob")


def test_store_a_private_and_public_key(manager: Any) -> None:
    pem_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der_private = pem_private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der_public = pem_private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_id = manager.store(None, private_key.PrivateKey("RSA", 2048, der_private))
    public_id = manager.store(None, public_key.PublicKey("RSA", 2048, der_public))
    got_private, got_public = manager.get(None, private_id), manager.get(None, public_id)
    assert isinstance(got_private, private_key.PrivateKey) and got_private.get_encoded() == der_private
    assert isinstance(got_public, public_key.PublicKey) and got_public.get_encoded() == der_public


def test_create_key_pair(manager: Any) -> None:
    private_id, public_id = manager.create_key_pair(None, "RSA", 2048)
    got_private, got_public = manager.get(None, private_id), manager.get(None, public_id)
    assert isinstance(got_private, private_key.PrivateKey) and isinstance(got_public, public_key.PublicKey)
    loaded = serialization.load_pem_private_key(got_private.get_encoded(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size == 2048
    assert (
        loaded.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        == got_public.get_encoded()
    )
    with pytest.raises(NotImplementedError):
        manager.create_key_pair(None, "DSA", 2048)


def test_create_key(manager: Any) -> None:
    # No ``name``: Castellan's create_key passes its arguments one place off (the key id as the name, the name
    # as ``created``), so a named create fails in Castellan itself, before any request, against any Vault.
    key_id = manager.create_key(None, "AES", 128)
    got = manager.get(None, key_id)
    assert isinstance(got, symmetric_key.SymmetricKey)
    assert (got.algorithm, got.bit_length, got.name, len(got.get_encoded())) == ("AES", 128, key_id, 16)
    assert isinstance(got.created, int)
    assert manager.get(None, manager.create_key(None, "AES", 0)).bit_length == 256  # Castellan's default length


def test_list_and_filter(manager: Any) -> None:
    assert manager.list(None) == []  # a new project: the empty list (Vault's 404) is no objects
    key = symmetric_key.SymmetricKey("AES", 128, b"k" * 16, name="one")
    secret = passphrase.Passphrase(b"pw", name="two")
    key_id, secret_id = manager.store(None, key), manager.store(None, secret)
    listed = {obj.id: obj for obj in manager.list(None)}
    assert set(listed) == {key_id, secret_id}
    assert listed[key_id].get_encoded() == b"k" * 16 and listed[secret_id].get_encoded() == b"pw"
    assert [obj.id for obj in manager.list(None, object_type=symmetric_key.SymmetricKey)] == [key_id]
    metadata_only = manager.list(None, metadata_only=True)
    assert {obj.id for obj in metadata_only} == {key_id, secret_id}
    assert all(obj.is_metadata_only() for obj in metadata_only)


def test_delete_then_get_and_list(manager: Any) -> None:
    kept = manager.store(None, opaque_data.OpaqueData(b"kept"))
    gone = manager.store(None, opaque_data.OpaqueData(b"gone"))
    manager.delete(None, gone)
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        manager.get(None, gone)
    # A soft-deleted key is still listed by KV, but Castellan skips what it cannot read.
    assert [obj.id for obj in manager.list(None)] == [kept]
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        manager.get(None, uuid.uuid4().hex)
    with pytest.raises(castellan_errors.KeyManagerError):
        manager.get(None, None)


def test_projects_are_apart_and_bad_tokens_are_forbidden(server: LiveServer, manager: Any) -> None:
    key_id = manager.store(None, opaque_data.OpaqueData(b"mine"))
    stranger = vault_manager(server, donjon_token(server, f"castellan-{uuid.uuid4()}", "member"))
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        stranger.get(None, key_id)
    assert stranger.list(None) == []
    forged = vault_manager(server, "not-a-token")
    with pytest.raises(castellan_errors.Forbidden):
        forged.get(None, key_id)
