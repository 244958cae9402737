"""The key-manager conformance suite: one set of tests, unchanged, run against every real backend.

A test module subclasses ``KeyManagerConformance`` and provides a ``km`` fixture: a key manager on the real
backend, in a namespace of its own (a fresh project, path or name prefix), so that ``list`` can be checked
exactly. ``consumers`` says whether the backend has consumers (else they must raise ``NotSupported``); ``expires``
whether it enforces an expiration (else asking for one must raise ``NotSupported`` and store nothing).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from donjon.client import (
    Certificate,
    ClientError,
    Conflict,
    Consumer,
    InvalidRequest,
    KeyManager,
    ManagedObject,
    NotFound,
    NotSupported,
    OpaqueData,
    Passphrase,
    PrivateKey,
    PublicKey,
    SymmetricKey,
)

_EC = ec.generate_private_key(ec.SECP256R1())
PRIVATE_PEM = _EC.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
PUBLIC_DER = _EC.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
# A self-signed certificate is not needed to test storage: any X.509 DER would do; PEM-wrapped test bytes.
CERT_PEM = (
    b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUconformanceconformanceconformanceAwCgYIKoZIzj0EAwIw\n"
    b"-----END CERTIFICATE-----\n"
)


def samples() -> list[ManagedObject]:
    return [
        SymmetricKey(data=os.urandom(32), name="sym", algorithm="aes", bit_length=256),
        PrivateKey(data=PRIVATE_PEM, name="priv", algorithm="ec", bit_length=256),
        PublicKey(data=PUBLIC_DER, name="pub", algorithm="ec", bit_length=256),
        Certificate(data=CERT_PEM, name="cert"),
        Passphrase(data="correct horse \N{SNOWMAN}\n".encode(), name="pass"),
        OpaqueData(data=bytes(range(256)) * 4, name="blob"),
    ]


class KeyManagerConformance:
    consumers: ClassVar[bool] = False
    expires: ClassVar[bool] = False

    @pytest.fixture
    def pass_expiration(self) -> Callable[[str, datetime], None]:
        """Makes an object's expiration (``when``) pass. A backend that ``expires`` overrides it by moving the
        expiration in its server's database (a test never sleeps until a clock reaches a time)."""

        def unsupported(object_id: str, when: datetime) -> None:
            raise NotImplementedError(f"{type(self).__name__} must say how an expiration is made to pass")

        return unsupported

    @pytest.mark.parametrize("index", range(6), ids=[type(s).__name__ for s in samples()])
    def test_store_then_get_is_byte_exact(self, km: KeyManager, index: int) -> None:
        obj = samples()[index]
        object_id = km.store(obj)
        assert isinstance(object_id, str) and object_id
        got = km.get(object_id)
        assert type(got) is type(obj)
        assert got.data == obj.data
        assert got.name == obj.name
        assert got.id == object_id
        if isinstance(obj, SymmetricKey | PrivateKey | PublicKey):
            assert (got.algorithm or "").lower() == obj.algorithm  # type: ignore[union-attr]
            assert got.bit_length == obj.bit_length  # type: ignore[union-attr]
        assert obj.data.hex() not in repr(got) and repr(obj.data) not in repr(got)

    def test_unnamed_object(self, km: KeyManager) -> None:
        object_id = km.store(OpaqueData(data=b"\x00no name\xff"))
        got = km.get(object_id)
        assert got.name is None and got.data == b"\x00no name\xff"

    def test_get_unknown_is_not_found(self, km: KeyManager) -> None:
        with pytest.raises(NotFound):
            km.get(self.unknown_id())

    def unknown_id(self) -> str:
        return str(uuid.uuid4())

    def test_delete(self, km: KeyManager) -> None:
        object_id = km.store(Passphrase(data=b"to be deleted"))
        km.delete(object_id)
        with pytest.raises(NotFound):
            km.get(object_id)
        with pytest.raises(NotFound):
            km.delete(object_id)
        assert object_id not in {info.id for info in km.list()}

    def test_create_key(self, km: KeyManager) -> None:
        key_id = km.create_key(algorithm="aes", bit_length=256, name="generated")
        key = km.get(key_id)
        assert isinstance(key, SymmetricKey)
        assert len(key.data) == 32 and key.bit_length == 256
        assert (key.algorithm or "").lower() == "aes" and key.name == "generated"
        other = km.get(km.create_key(algorithm="aes", bit_length=128))
        assert len(other.data) == 16 and other.data != key.data[:16]

    def test_create_key_refuses_a_bad_size(self, km: KeyManager) -> None:
        with pytest.raises(InvalidRequest):
            km.create_key(algorithm="aes", bit_length=100)

    def test_create_key_pair(self, km: KeyManager) -> None:
        private_id, public_id = km.create_key_pair(algorithm="rsa", bit_length=2048, name="pair")
        private = km.get(private_id)
        public = km.get(public_id)
        assert isinstance(private, PrivateKey) and isinstance(public, PublicKey)
        loaded = serialization.load_pem_private_key(private.data, password=None)
        assert (
            loaded.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public.data
        )
        assert private.bit_length == 2048 and (private.algorithm or "").lower() == "rsa"

    def test_list_every_page_and_type_filter(self, km: KeyManager) -> None:
        stored = {km.store(OpaqueData(data=f"blob {i}".encode(), name=f"b{i}")) for i in range(105)}
        keys = {km.store(SymmetricKey(data=os.urandom(16), algorithm="aes")) for _ in range(3)}
        listed = list(km.list())
        assert len(listed) == len({i.id for i in listed}) == 108  # no repeats, nothing skipped past page 1
        assert {i.id for i in listed} == stored | keys
        only_keys = list(km.list(SymmetricKey))
        assert {i.id for i in only_keys} == keys
        assert all(i.object_type == "symmetric" and i.bit_length == 128 for i in only_keys)
        assert {i.id for i in km.list("opaque")} == stored
        assert list(km.list(Certificate)) == []
        names = {i.name for i in listed if i.id in stored}
        assert names == {f"b{i}" for i in range(105)}

    def test_consumers(self, km: KeyManager) -> None:
        object_id = km.store(OpaqueData(data=b"in use"))
        consumer = Consumer("cinder", "volume", "vol-1")
        if not self.consumers:
            for call in (km.add_consumer, km.remove_consumer):
                with pytest.raises(NotSupported):
                    call(object_id, consumer)
            with pytest.raises(NotSupported):
                km.list_consumers(object_id)
            return
        km.add_consumer(object_id, consumer)
        km.add_consumer(object_id, Consumer("nova", "instance", "vm-1"))
        assert set(km.list_consumers(object_id)) == {consumer, Consumer("nova", "instance", "vm-1")}
        with pytest.raises(Conflict):
            km.delete(object_id)
        km.remove_consumer(object_id, consumer)
        assert km.list_consumers(object_id) == [Consumer("nova", "instance", "vm-1")]
        km.delete(object_id, force=True)
        with pytest.raises(NotFound):
            km.get(object_id)

    def test_expiration(self, km: KeyManager, pass_expiration: Callable[[str, datetime], None]) -> None:
        later = datetime.now(UTC) + timedelta(hours=1)
        soon = datetime.now(UTC) + timedelta(seconds=2)
        if not self.expires:
            with pytest.raises(NotSupported):
                km.store(OpaqueData(data=b"ephemeral"), expiration=later)
            with pytest.raises(NotSupported):
                km.create_key(expiration=later)
            with pytest.raises(NotSupported):
                km.create_key_pair(bit_length=2048, expiration=later)
            assert list(km.list()) == [], "a refused expiration must store nothing"
            return
        with pytest.raises(InvalidRequest):
            km.store(OpaqueData(data=b"naive"), expiration=datetime.now() + timedelta(hours=1))  # noqa: DTZ005
        with pytest.raises(InvalidRequest):
            km.store(OpaqueData(data=b"past"), expiration=datetime.now(UTC) - timedelta(minutes=1))
        kept = km.store(OpaqueData(data=b"for an hour"), expiration=later)
        key_id = km.create_key(expiration=later)
        short = km.store(OpaqueData(data=b"for two seconds"), expiration=soon)
        listed = {info.id: info for info in km.list()}
        assert set(listed) == {kept, key_id, short}
        for object_id, when in ((kept, later), (key_id, later), (short, soon)):
            expiration = listed[object_id].expiration
            assert expiration is not None and abs((expiration - when).total_seconds()) < 1, (object_id, expiration)
        pass_expiration(short, soon)
        with pytest.raises(NotFound):
            km.get(short)
        assert {info.id for info in km.list()} == {kept, key_id}
        assert km.get(kept).data == b"for an hour"

    def test_errors_are_the_sdks(self, km: KeyManager) -> None:
        with pytest.raises(ClientError) as caught:
            km.get(self.unknown_id())
        assert caught.value.message
