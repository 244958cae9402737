"""The nss keystore on a real NSS database made by certutil -N: conformance, persistence, attributes, PINs, threads."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pkcs11 import Attribute, KeyType
from pkcs11 import exceptions as p11e

from donjon.crypto import DecryptionFailed
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey, open_keystore
from donjon.keystores.nss import NssKeystore
from tests.keystore_conformance import exercise_keystore, exercise_persistence
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from tests.components.nss import NssDatabase

# A plugin, not an import: pytest rewrites its asserts and owns its session fixture.
pytest_plugins = ["tests.components.nss"]


def open_nss(db: NssDatabase, **extra: Any) -> NssKeystore:
    keystore = open_keystore("nss", db.options(**extra))
    assert isinstance(keystore, NssKeystore)
    return keystore


@pytest.fixture
def keystore(nss_db: NssDatabase) -> Iterator[NssKeystore]:
    keystore = open_nss(nss_db)
    yield keystore
    keystore.close()


def test_conformance(keystore: NssKeystore) -> None:
    exercise_keystore(keystore)


def test_persistence(nss_db: NssDatabase) -> None:
    exercise_persistence("nss", nss_db.options())


def test_root_key_is_non_extractable_and_sensitive_in_key4_db(keystore: NssKeystore) -> None:
    prefix, label, key_id = keystore.root_key_id().split(":")
    assert (prefix, label, len(bytes.fromhex(key_id))) == ("nss", "donjon-root", 16)
    with keystore._borrow() as pooled:
        key = keystore._root_key(pooled, keystore.root_key_id())
        assert key is not None
        with pytest.raises(p11e.AttributeSensitive):
            key[Attribute.VALUE]
        assert key[Attribute.KEY_TYPE] == KeyType.AES and key[Attribute.VALUE_LEN] == 32
        assert key[Attribute.TOKEN] is True and key[Attribute.PRIVATE] is True
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.ALWAYS_SENSITIVE] is True and key[Attribute.NEVER_EXTRACTABLE] is True


def test_blob_layout(keystore: NssKeystore) -> None:
    wrapped = keystore.wrap(b"k" * 32, b"ctx")
    # version, nonce, ciphertext, the full 16-byte tag (the presized C_Encrypt buffer keeps it)
    assert wrapped.blob[:1] == b"\x01" and len(wrapped.blob) == 1 + 12 + 32 + 16


def test_rotation_to_a_new_label(keystore: NssKeystore, nss_db: NssDatabase) -> None:
    old = keystore.wrap(b"o" * 32, b"ctx")
    rotated = open_nss(nss_db, key_label="donjon-root-2")
    try:
        assert rotated.root_key_id().startswith("nss:donjon-root-2:")
        assert rotated.unwrap(old, b"ctx") == b"o" * 32
        assert keystore.unwrap(rotated.wrap(b"n" * 32, b"c"), b"c") == b"n" * 32
        with pytest.raises(DecryptionFailed):
            rotated.unwrap(WrappedKey(rotated.root_key_id(), old.blob), b"ctx")
        with pytest.raises(DecryptionFailed):  # another keystore type's id never names an NSS key
            rotated.unwrap(WrappedKey("pkcs11" + old.root_key_id[3:], old.blob), b"ctx")
    finally:
        rotated.close()


def test_wrong_password_is_a_configuration_error_that_does_not_show_it(
    nss_db: NssDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-" + nss_db.password
    pin_file = tmp_path / "wrong.pw"
    pin_file.write_text(wrong + "\n")
    pin_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="rejected the PIN") as refused:
        open_keystore("nss", nss_db.options(pin_file=str(pin_file)))
    assert wrong not in str(refused.value) and nss_db.password not in str(refused.value)
    holder = open_nss(nss_db)
    try:
        monkeypatch.setenv("DONJON_NSS_PIN", wrong)
        with pytest.raises(ConfigurationError, match="environment variable DONJON_NSS_PIN") as shared:
            open_keystore("nss", {"db_dir": str(nss_db.db_dir)})
        assert wrong not in str(shared.value)
    finally:
        holder.close()


def test_password_from_the_environment(nss_db: NssDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_NSS_PASSWORD", nss_db.password)
    keystore = open_keystore("nss", {"db_dir": str(nss_db.db_dir), "pin_env": "MY_NSS_PASSWORD"})
    try:
        assert nss_db.password not in repr(keystore)
        exercise_keystore(keystore)
    finally:
        keystore.close()


def test_create_false_requires_the_key(nss_db: NssDatabase) -> None:
    with pytest.raises(ConfigurationError, match="no root key labelled 'absent-root'"):
        open_keystore("nss", nss_db.options(key_label="absent-root", create=False))


def test_one_database_per_process_at_a_time(keystore: NssKeystore, tmp_path: Path) -> None:
    from tests.components.nss import create_database  # here: the plugin must be imported first, by pytest

    other = create_database(tmp_path / "other")
    with pytest.raises(ConfigurationError, match="already in use in this process"):
        open_keystore("nss", other.options())
    keystore.close()  # the last user: the softoken is finalised and may open another database
    elsewhere = open_nss(other)
    try:
        exercise_keystore(elsewhere)
    finally:
        elsewhere.close()


def test_option_checks(nss_db: NssDatabase, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="option 'db_dir' is required"):
        open_keystore("nss", {"pin_file": str(nss_db.pin_file)})
    with pytest.raises(ConfigurationError, match="holds no NSS key database"):
        open_keystore("nss", nss_db.options(db_dir=str(tmp_path)))
    with pytest.raises(ConfigurationError, match=r"unknown option 'token_label' \(did you mean 'key_label'"):
        open_keystore("nss", nss_db.options(token_label="NSS Certificate DB"))
    quoted = tmp_path / "it's"
    quoted.mkdir()
    with pytest.raises(ConfigurationError, match="quotes"):
        open_keystore("nss", nss_db.options(db_dir=str(quoted)))


def test_sixteen_threads_wrap_and_unwrap_concurrently(keystore: NssKeystore) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(25):
                key, context = os.urandom(32), f"thread-{n}/round-{i}".encode()
                wrapped = keystore.wrap(key, context)
                assert keystore.unwrap(wrapped, context) == key
                with pytest.raises(DecryptionFailed):
                    keystore.unwrap(wrapped, context + b"!")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    assert not errors, errors[:3]
    print(f"\nnss softoken: {3 * 16 * 25 / elapsed:.0f} ops/s on 16 threads")


@pytest.mark.live
def test_a_server_on_the_nss_keystore_configured_by_environment(nss_db: NssDatabase, tmp_path: Path) -> None:
    env = {
        "DONJON_KEYSTORE__TYPE": "nss",
        "DONJON_KEYSTORE__OPTIONS__DB_DIR": str(nss_db.db_dir),
        "DONJON_KEYSTORE__OPTIONS__KEY_LABEL": "live-nss-root",
        "DONJON_NSS_PIN": nss_db.password,  # the default pin_env
    }
    server = LiveServer(tmp_path / "data", env=env).start()  # two worker processes on one NSS database
    try:
        with httpx.Client(base_url=server.url, headers={"X-Project-Id": "p-nss"}, timeout=30) as client:
            refs = []
            for n in range(4):
                created = client.post(
                    "/v1/secrets", json={"payload": f"nss secret {n}", "payload_content_type": "text/plain"}
                )
                assert created.status_code == 201, created.text
                refs.append(created.json()["secret_ref"])
            for n, ref in enumerate(refs):
                read = client.get(f"{ref}/payload", headers={"Accept": "text/plain"})
                assert (read.status_code, read.text) == (200, f"nss secret {n}")
    finally:
        server.stop()
    assert nss_db.password not in server.log.read_text()
    with sqlite3.connect(tmp_path / "data" / "donjon.sqlite") as db:
        (root_id,) = {row[0] for row in db.execute("SELECT root_key_id FROM project_keks")}
    assert root_id.startswith("nss:live-nss-root:")
