"""Castellan's BarbicanKeyManager, unmodified from PyPI, against a live donjon in dev mode.

Castellan always talks through a keystoneauth session. In dev mode there is no Keystone: the context is an
oslo.context RequestContext whose auth plugin (Castellan asks ``get_auth_plugin()``) sends donjon's dev
headers, and ``[barbican] barbican_endpoint`` points at the live server. The Keystone flavour of the same
flow runs in the Keystone tests.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from castellan.common import exception as castellan_errors
from castellan.common.objects import opaque_data, passphrase, private_key, public_key, symmetric_key
from castellan.key_manager.barbican_key_manager import BarbicanKeyManager
from cryptography.hazmat.primitives import serialization
from keystoneauth1 import plugin
from oslo_config import cfg
from oslo_context import context as oslo_context

from tests.live_server import LiveServer

pytestmark = pytest.mark.live


class DevHeaders(plugin.BaseAuthPlugin):  # type: ignore[misc]
    """A keystoneauth plugin that authenticates as donjon's dev mode expects: by naming the project."""

    def __init__(self, project_id: str, user_id: str, roles: str) -> None:
        super().__init__()
        self.headers = {"X-Project-Id": project_id, "X-User-Id": user_id, "X-Roles": roles}

    def get_headers(self, session: Any, **kwargs: Any) -> dict[str, str]:
        return dict(self.headers)


class DevContext(oslo_context.RequestContext):  # type: ignore[misc]
    def __init__(self, project_id: str, user_id: str = "castellan-user", roles: str = "member") -> None:
        super().__init__(project_id=project_id, user_id=user_id)
        self._plugin = DevHeaders(project_id, user_id, roles)

    def get_auth_plugin(self) -> plugin.BaseAuthPlugin:
        return self._plugin


@pytest.fixture
def manager(live_server: LiveServer) -> BarbicanKeyManager:
    conf = cfg.ConfigOpts()
    conf([], project="castellan-test", default_config_files=[], default_config_dirs=[])
    km = BarbicanKeyManager(conf)
    conf.set_override("barbican_endpoint", live_server.url, group="barbican")
    conf.set_override("retry_delay", 0, group="barbican")
    conf.set_override("number_of_retries", 300, group="barbican")
    return km


@pytest.fixture
def context() -> DevContext:
    return DevContext(f"castellan-{uuid.uuid4()}")


def test_create_key_returns_a_stored_symmetric_key(manager: BarbicanKeyManager, context: DevContext) -> None:
    key_id = manager.create_key(context, algorithm="AES", length=256, name="volume-key")
    key = manager.get(context, key_id)
    assert isinstance(key, symmetric_key.SymmetricKey)
    assert (key.algorithm, key.bit_length, key.name) == ("AES", 256, "volume-key")
    assert len(key.get_encoded()) == 32
    # Castellan deletes its order after reading the result: nothing left behind but the key.
    assert manager.list(context, metadata_only=True)[0].id == key_id


def test_create_key_pair(manager: BarbicanKeyManager, context: DevContext) -> None:
    private_id, public_id = manager.create_key_pair(context, algorithm="RSA", length=2048, name="signing")
    private = manager.get(context, private_id)
    public = manager.get(context, public_id)
    assert isinstance(private, private_key.PrivateKey) and isinstance(public, public_key.PublicKey)
    loaded = serialization.load_der_private_key(private.get_encoded(), password=None)
    assert (
        loaded.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        == public.get_encoded()
    )


@pytest.mark.parametrize(
    "managed",
    [
        symmetric_key.SymmetricKey("AES", 128, os.urandom(16), name="sym"),
        passphrase.Passphrase(b"correct horse battery staple", name="pass"),
        opaque_data.OpaqueData(bytes(range(256)), name="blob"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_store_get_delete(manager: BarbicanKeyManager, context: DevContext, managed: Any) -> None:
    managed_id = manager.store(context, managed)
    fetched = manager.get(context, managed_id)
    assert type(fetched) is type(managed)
    assert fetched.get_encoded() == managed.get_encoded()
    assert fetched.name == managed.name
    manager.delete(context, managed_id)
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        manager.get(context, managed_id)
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        manager.delete(context, managed_id)


def test_list_with_type_filter(manager: BarbicanKeyManager, context: DevContext) -> None:
    sym = manager.store(context, symmetric_key.SymmetricKey("AES", 256, os.urandom(32)))
    pw = manager.store(context, passphrase.Passphrase(b"p4ss"))
    assert {o.id for o in manager.list(context)} == {sym, pw}
    [only] = manager.list(context, object_type=passphrase.Passphrase)
    assert (only.id, only.get_encoded()) == (pw, b"p4ss")


def test_consumers(manager: BarbicanKeyManager, context: DevContext) -> None:
    managed_id = manager.store(context, opaque_data.OpaqueData(b"in use"))
    consumer = {"service": "cinder", "resource_type": "volume", "resource_id": "vol-1"}
    manager.add_consumer(context, managed_id, consumer)
    with pytest.raises(castellan_errors.KeyManagerError):
        manager.delete(context, managed_id)
    manager.remove_consumer(context, managed_id, consumer)
    manager.delete(context, managed_id)


def test_another_project_cannot_reach_the_key(manager: BarbicanKeyManager, context: DevContext) -> None:
    key_id = manager.store(context, symmetric_key.SymmetricKey("AES", 128, os.urandom(16)))
    stranger = DevContext(f"castellan-{uuid.uuid4()}")
    with pytest.raises(castellan_errors.ManagedObjectNotFoundError):
        manager.get(stranger, key_id)
    assert manager.list(stranger) == []
