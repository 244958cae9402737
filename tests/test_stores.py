"""External secret stores on the real servers: OpenBao's KV v2 and PyKMIP's server."""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace

import hvac
import pytest

from donjon.config import Settings
from donjon.crypto import DecryptionFailed
from donjon.errors import ConfigurationError
from donjon.keystores import open_keystore
from donjon.services.project_keys import ProjectKeys
from donjon.storage.database import Database
from donjon.stores import PayloadInfo, PayloadMissing, StoredPayload, StoreUnavailable, open_store
from donjon.stores.database import DatabaseSecretStore
from donjon.stores.kmip import KmipSecretStore
from donjon.stores.vault import VaultSecretStore
from tests.components.kmip import KmipServer
from tests.components.openbao import OpenBao
from tests.store_conformance import exercise_store, samples

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kmip.core import enums
    from kmip.core.messages import payloads


@pytest.fixture
def vault_store(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultSecretStore]:  # noqa: F811
    monkeypatch.setenv("DONJON_VAULT_TOKEN", openbao.token)
    store = open_store("vault", {"url": openbao.url, "prefix": f"t-{uuid.uuid4().hex[:8]}"})
    assert isinstance(store, VaultSecretStore)
    yield store
    store.close()


@pytest.fixture
def kmip_store(kmip_server: KmipServer) -> Iterator[KmipSecretStore]:  # noqa: F811
    store = open_store("kmip", kmip_server.options())
    assert isinstance(store, KmipSecretStore)
    yield store
    store.close()


def test_vault_conformance(vault_store: VaultSecretStore, openbao: OpenBao) -> None:  # noqa: F811
    stored = exercise_store(vault_store)
    # Deleted means gone for good: no KV metadata (so no restorable version) is left under the path.
    admin = hvac.Client(url=openbao.url, token=openbao.token)
    for _, ref in stored:
        with pytest.raises(hvac.exceptions.InvalidPath):
            admin.secrets.kv.v2.read_secret_metadata(path=ref.ref, mount_point="secret")
    admin.adapter.close()


def test_vault_paths_are_per_project(vault_store: VaultSecretStore, openbao: OpenBao) -> None:  # noqa: F811
    info = PayloadInfo(str(uuid.uuid4()), "tenant/with slash", "opaque")
    ref = vault_store.put(info, b"x")
    assert ref.ref == f"{vault_store.prefix}/tenant%2Fwith%20slash/{info.secret_id}"
    admin = hvac.Client(url=openbao.url, token=openbao.token)
    listed = admin.secrets.kv.v2.list_secrets(path=vault_store.prefix, mount_point="secret")["data"]["keys"]
    assert "tenant%2Fwith%20slash/" in listed
    admin.adapter.close()
    vault_store.delete(info, ref)


def test_vault_configuration_errors(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("DONJON_VAULT_TOKEN", openbao.token)
    with pytest.raises(ConfigurationError, match="no KV v2 engine is mounted"):
        open_store("vault", {"url": openbao.url, "mount": "nothing-here"})
    with pytest.raises(
        ConfigurationError, match=r"unknown option 'colour' \(the options are ca_cert, mount, namespace"
    ):
        open_store("vault", {"url": openbao.url, "colour": "blue"})
    with pytest.raises(ConfigurationError, match=r"unknown option 'prefx' \(did you mean 'prefix'"):
        open_store("vault", {"url": openbao.url, "prefx": "x"})
    monkeypatch.setenv("DONJON_VAULT_TOKEN", "not-a-token")
    with pytest.raises(ConfigurationError, match="permission denied") as caught:
        open_store("vault", {"url": openbao.url})
    assert "not-a-token" not in str(caught.value)


def test_vault_outage_is_unavailable_not_missing(vault_store: VaultSecretStore) -> None:
    info = PayloadInfo(str(uuid.uuid4()), "p", "opaque")
    ref = vault_store.put(info, b"x")
    vault_store._vault.url = "http://127.0.0.1:9"  # type: ignore[misc]  # nothing listens there
    vault_store._vault.close()
    with pytest.raises(StoreUnavailable):
        vault_store.get(info, ref)


def test_kmip_conformance_and_object_types(kmip_store: KmipSecretStore) -> None:
    stored = exercise_store(kmip_store)
    assert len(stored) == 14


def test_kmip_objects_have_their_types(kmip_store: KmipSecretStore) -> None:
    expected = [
        enums.ObjectType.SYMMETRIC_KEY,
        enums.ObjectType.SYMMETRIC_KEY,
        enums.ObjectType.OPAQUE_DATA,  # camellia: no KMIP algorithm mapped
        enums.ObjectType.PRIVATE_KEY,
        enums.ObjectType.PRIVATE_KEY,
        enums.ObjectType.OPAQUE_DATA,  # encrypted PEM
        enums.ObjectType.OPAQUE_DATA,  # PKCS#1 would not come back byte-exact as PKCS#8
        enums.ObjectType.PUBLIC_KEY,
        enums.ObjectType.PUBLIC_KEY,
        enums.ObjectType.CERTIFICATE,
        enums.ObjectType.CERTIFICATE,
        enums.ObjectType.SECRET_DATA,
        enums.ObjectType.OPAQUE_DATA,
        enums.ObjectType.OPAQUE_DATA,
    ]
    project = f"p-{uuid.uuid4()}"
    for (secret_type, algorithm, payload), object_type in zip(samples(), expected, strict=True):
        info = PayloadInfo(str(uuid.uuid4()), project, secret_type, algorithm)
        ref = kmip_store.put(info, payload)
        assert ref.ref is not None
        uid = ref.ref.split("/")[0]
        response = kmip_store._call(
            "get attributes",
            enums.Operation.GET_ATTRIBUTES,
            payloads.GetAttributesRequestPayload(unique_identifier=uid, attribute_names=["Object Type"]),
        )
        assert response.attributes[0].attribute_value.value == object_type, (secret_type, algorithm)
        kmip_store.delete(info, ref)


def test_kmip_concurrent_use(kmip_store: KmipSecretStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                info = PayloadInfo(str(uuid.uuid4()), f"p{n}", "passphrase")
                ref = kmip_store.put(info, f"{n}-{i}".encode())
                assert kmip_store.get(info, ref) == f"{n}-{i}".encode()
                kmip_store.delete(info, ref)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_kmip_bad_reference_and_configuration(kmip_store: KmipSecretStore, kmip_server: KmipServer) -> None:  # noqa: F811
    info = PayloadInfo(str(uuid.uuid4()), "p", "opaque")
    with pytest.raises(PayloadMissing):
        kmip_store.get(info, StoredPayload(ref="no-such-uid/raw"))
    with pytest.raises(PayloadMissing):
        kmip_store.get(info, StoredPayload(ref="garbage"))
    with pytest.raises(ConfigurationError, match=r"unknown option 'key_name' \(the options are ca_certs, certfile"):
        open_store("kmip", kmip_server.options(key_name="x"))
    with pytest.raises(ConfigurationError, match="unknown secret store type"):
        open_store("dogtag", {})


def test_store_reprs_hold_no_secrets(kmip_store: KmipSecretStore, vault_store: VaultSecretStore) -> None:
    assert "token" not in repr(vault_store).lower()
    assert repr(kmip_store).startswith("KmipSecretStore(server=")


def test_database_store_seals_into_the_row_bound_to_identity(settings: Settings) -> None:
    """The built-in store answers the same protocol: put seals (a KEK id and a ciphertext, no reference), get
    opens byte-exact, and the ciphertext opens only for its own secret, project and version."""
    db = Database(settings.effective_database_url, pool_size=2)
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    try:
        store = DatabaseSecretStore(ProjectKeys(db, keystore, 60))
        project = f"project-{uuid.uuid4()}"
        for secret_type, algorithm, payload in samples():
            info = PayloadInfo(str(uuid.uuid4()), project, secret_type, algorithm)
            stored = store.put(info, payload)
            assert stored.ref is None and stored.kek_id and stored.ciphertext
            assert payload not in stored.ciphertext and payload.hex() not in repr(stored)
            assert store.get(info, stored) == payload, f"{secret_type}/{algorithm} is not byte-exact"
        for other in (
            replace(info, secret_id=str(uuid.uuid4())),
            replace(info, project_id=f"project-{uuid.uuid4()}"),
            replace(info, version=2),
        ):
            with pytest.raises((DecryptionFailed, LookupError)):  # another project has no such KEK at all
                store.get(other, stored)
        with pytest.raises(PayloadMissing):  # a purged project's rows lost their KEK id
            store.get(info, replace(stored, kek_id=None))
        store.delete(info, stored)  # the ciphertext goes with its row: nothing to destroy elsewhere
        assert store.get(info, stored) == payload
    finally:
        keystore.close()
        db.dispose()
