"""The Vault transit keystore against a real OpenBao dev server: conformance, rotation, tokens, failures."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from donjon.crypto import DecryptionFailed
from donjon.drivers.vault import VaultConnection, VaultSettings
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey, open_keystore
from donjon.keystores.vault import VaultKeystore, VaultKeystoreError
from tests.components.openbao import OpenBao
from tests.keystore_conformance import exercise_keystore, exercise_persistence
from tests.live_server import LiveServer, free_port

CONTEXT = b"donjon/kek/v1\x00kek-1\x00project-a"


@pytest.fixture
def admin(openbao: OpenBao) -> Iterator[Any]:  # noqa: F811
    client = hvac.Client(url=openbao.url, token=openbao.token)
    yield client
    client.adapter.close()


@pytest.fixture
def key_name() -> str:
    """A transit key of its own for each test, so rotations and deletions do not leak between tests."""
    return f"donjon-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def options(openbao: OpenBao, key_name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:  # noqa: F811
    monkeypatch.setenv("DONJON_VAULT_TOKEN", openbao.token)
    return {"url": openbao.url, "key_name": key_name}


def scoped_token(admin: Any, key_name: str, *, ttl: str = "1h") -> str:
    """A non-root token allowed exactly what the keystore needs on one key (the documented policy)."""
    policy = f"""
path "transit/keys/{key_name}" {{ capabilities = ["read", "create", "update"] }}
path "transit/encrypt/{key_name}" {{ capabilities = ["update"] }}
path "transit/decrypt/{key_name}" {{ capabilities = ["update"] }}
"""
    admin.sys.create_or_update_policy(name=f"donjon-{key_name}", policy=policy)
    return str(admin.auth.token.create(policies=[f"donjon-{key_name}"], ttl=ttl)["auth"]["client_token"])


def test_conformance(options: dict[str, Any]) -> None:
    keystore = open_keystore("vault", options)
    try:
        exercise_keystore(keystore)
    finally:
        keystore.close()


def test_persistence(options: dict[str, Any]) -> None:
    exercise_persistence("vault", options)  # the token reaches the other process through DONJON_VAULT_TOKEN


def test_creates_the_key_and_names_it(options: dict[str, Any], admin: Any, key_name: str) -> None:
    keystore = VaultKeystore.from_options(options)
    info = admin.secrets.transit.read_key(name=key_name)["data"]
    assert info["type"] == "aes256-gcm96" and info["exportable"] is False
    assert keystore.root_key_id() == f"vault:transit/{key_name}"
    assert "transit" in repr(keystore) and os.environ["DONJON_VAULT_TOKEN"] not in repr(keystore)
    keystore.close()


def test_a_fresh_instance_unwraps_earlier_wraps(options: dict[str, Any]) -> None:
    first = VaultKeystore.from_options(options)
    key = os.urandom(32)
    wrapped = first.wrap(key, CONTEXT)
    first.close()
    second = VaultKeystore.from_options(options)
    assert second.unwrap(WrappedKey(wrapped.root_key_id, wrapped.blob), CONTEXT) == key
    second.close()


def test_transit_rotation_keeps_old_wraps_and_rewrap_moves_them(
    options: dict[str, Any], admin: Any, key_name: str
) -> None:
    keystore = VaultKeystore.from_options(options)
    key = os.urandom(32)
    old = keystore.wrap(key, CONTEXT)
    assert VaultKeystore.key_version(old) == 1

    admin.secrets.transit.rotate_key(name=key_name)

    new = keystore.wrap(key, CONTEXT)
    assert VaultKeystore.key_version(new) == 2
    assert new.root_key_id == old.root_key_id == keystore.root_key_id()
    assert keystore.unwrap(old, CONTEXT) == key
    assert keystore.unwrap(new, CONTEXT) == key

    rewrapped = keystore.rewrap(old, CONTEXT)
    assert VaultKeystore.key_version(rewrapped) == 2
    # Retiring version 1 once everything is rewrapped: old blobs stop opening, rewrapped ones still do.
    admin.secrets.transit.update_key_configuration(name=key_name, min_decryption_version=2)
    with pytest.raises(DecryptionFailed):
        keystore.unwrap(old, CONTEXT)
    assert keystore.unwrap(rewrapped, CONTEXT) == key
    keystore.close()


def test_version_label_is_part_of_what_is_checked(options: dict[str, Any]) -> None:
    # Transit itself reads "vault:v0:" as "vault:v1:"; the stored blob must not have such a blind spot.
    keystore = VaultKeystore.from_options(options)
    wrapped = keystore.wrap(os.urandom(32), CONTEXT)
    for version in (0, 2, 2**32 - 1):
        blob = wrapped.blob[:1] + version.to_bytes(4, "big") + wrapped.blob[5:]
        with pytest.raises(DecryptionFailed):
            keystore.unwrap(WrappedKey(wrapped.root_key_id, blob), CONTEXT)
    for blob in (b"", wrapped.blob[:20], b"\x02" + wrapped.blob[1:]):
        with pytest.raises(DecryptionFailed):
            keystore.unwrap(WrappedKey(wrapped.root_key_id, blob), CONTEXT)
    keystore.close()


def test_a_bad_token_is_a_clear_configuration_error(options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "s.not-a-real-token-" + uuid.uuid4().hex
    monkeypatch.setenv("DONJON_VAULT_TOKEN", bad)
    with pytest.raises(ConfigurationError, match="permission denied") as caught:
        VaultKeystore.from_options(options)
    assert bad not in str(caught.value) and bad not in repr(caught.value)


def test_a_revoked_token_at_runtime_is_not_a_decryption_failure(
    options: dict[str, Any], admin: Any, key_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = scoped_token(admin, key_name)
    monkeypatch.setenv("DONJON_VAULT_TOKEN", token)
    keystore = VaultKeystore.from_options(options)
    wrapped = keystore.wrap(os.urandom(32), CONTEXT)
    admin.auth.token.revoke(token)
    for call in (lambda: keystore.unwrap(wrapped, CONTEXT), lambda: keystore.wrap(os.urandom(32), CONTEXT)):
        with pytest.raises(VaultKeystoreError, match="permission denied") as caught:
            call()
        assert token not in caught.value.message
    keystore.close()


def test_token_from_a_file_and_reloaded_when_refused(
    options: dict[str, Any], admin: Any, key_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "vault-token"
    first = scoped_token(admin, key_name)
    path.write_text(first + "\n")
    path.chmod(0o600)
    file_options = {k: v for k, v in options.items()} | {"token_file": str(path)}
    keystore = VaultKeystore.from_options(file_options)
    key = os.urandom(32)
    wrapped = keystore.wrap(key, CONTEXT)

    # An agent renews the token into the file and the old one dies: the next call picks the new one up.
    second = scoped_token(admin, key_name)
    path.write_text(second + "\n")
    admin.auth.token.revoke(first)
    assert keystore.unwrap(wrapped, CONTEXT) == key
    keystore.close()

    path.chmod(0o604)
    with pytest.raises(ConfigurationError, match="readable by others"):
        VaultKeystore.from_options(file_options)
    with pytest.raises(ConfigurationError, match="cannot read token file"):
        VaultKeystore.from_options(file_options | {"token_file": str(tmp_path / "missing")})


def test_token_env_names_another_variable(options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    token = os.environ["DONJON_VAULT_TOKEN"]
    monkeypatch.delenv("DONJON_VAULT_TOKEN")
    with pytest.raises(ConfigurationError, match="DONJON_VAULT_TOKEN"):
        VaultKeystore.from_options(options)
    monkeypatch.setenv("VAULT_TOKEN", token)
    VaultKeystore.from_options(options | {"token_env": "VAULT_TOKEN"}).close()


def test_concurrent_wraps_and_unwraps(options: dict[str, Any]) -> None:
    keystore = VaultKeystore.from_options(options)
    threads, per_thread = 8, 40
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                key = os.urandom(32)
                context = f"donjon/kek/v1\x00kek-{n}-{i}\x00project-{n}".encode()
                assert keystore.unwrap(keystore.wrap(key, context), context) == key
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert len(keystore._vault._clients) <= threads + 1  # one client per thread that used it (and the opener)
    keystore.close()


def test_missing_key_with_create_false(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        VaultKeystore.from_options(options | {"create": False})
    with pytest.raises(ConfigurationError, match="does not exist"):
        VaultKeystore.from_options(options | {"create": "false"})  # as an environment variable gives it


def test_missing_mount_says_how_to_enable_it(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="no secrets engine is mounted.*secrets enable"):
        VaultKeystore.from_options(options | {"mount": "not-mounted"})


def test_a_key_of_another_type_is_refused(options: dict[str, Any], admin: Any, key_name: str) -> None:
    admin.secrets.transit.create_key(name=key_name, key_type="chacha20-poly1305")
    with pytest.raises(ConfigurationError, match="chacha20-poly1305"):
        VaultKeystore.from_options(options)


def test_an_unreachable_server_is_a_keystore_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="cannot reach"):
        VaultKeystore.from_options(options | {"url": f"http://127.0.0.1:{free_port()}", "timeout": 2})
    keystore = VaultKeystore.from_options(options)
    wrapped = keystore.wrap(os.urandom(32), CONTEXT)
    settings = VaultSettings(f"http://127.0.0.1:{free_port()}", "t", None, True, 2.0, None)
    down = VaultKeystore(
        VaultConnection(settings, what="vault keystore", error=lambda e: VaultKeystoreError(e.message)),
        key_name=keystore.key_name,
    )
    with pytest.raises(VaultKeystoreError, match="cannot reach"):
        down.unwrap(wrapped, CONTEXT)
    down.close()
    keystore.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"pin": "1234"}, r"unknown option 'pin' \(the options are"),
        ({"key_nam": "x"}, r"unknown option 'key_nam' \(did you mean 'key_name'"),
        ({"token": "s.abc"}, "does not belong in the configuration"),
        ({"url": ""}, "'url' is required"),
        ({"url": "vault.example:8200"}, "not an http"),
        ({"key_name": "../sys"}, "not a transit key name"),
        ({"timeout": 0}, "option 'timeout' must be more than 0, not 0"),
        ({"verify": "maybe"}, "neither true, false nor a CA bundle file"),
        ({"create": "perhaps"}, "option 'create' must be true or false"),
        ({"ca_cert": "/nonexistent/ca.pem"}, "not a file"),
        ({"token_file": "/x", "token_env": "Y"}, "either"),
    ],
)
def test_option_validation(options: dict[str, Any], bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        VaultKeystore.from_options(options | bad)


def test_a_live_server_seals_secrets_under_the_transit_key(
    openbao: OpenBao,  # noqa: F811
    key_name: str,
    tmp_path: Path,
) -> None:
    config = tmp_path / "donjon.toml"
    config.write_text(
        f'[keystore]\ntype = "vault"\n[keystore.options]\nurl = "{openbao.url}"\nkey_name = "{key_name}"\n'
    )
    env = {"DONJON_CONFIG": str(config), "DONJON_VAULT_TOKEN": openbao.token}
    server = LiveServer(tmp_path / "data", workers=1, env=env)
    started = time.monotonic()
    server.start()
    startup = time.monotonic() - started
    try:
        headers = {"X-Project-Id": "vault-project", "Content-Type": "application/json"}
        body = json.dumps({"name": "db", "payload": "s3cr3t", "payload_content_type": "text/plain"}).encode()
        url = f"{server.url}/v1/secrets"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 201
            ref = json.loads(response.read())["secret_ref"]
        server.stop()
        server.start()  # a fresh process: the KEK must come back through transit decrypt
        headers = {"X-Project-Id": "vault-project", "Accept": "text/plain"}
        payload = urllib.request.Request(f"{ref}/payload", headers=headers)  # noqa: S310
        with urllib.request.urlopen(payload, timeout=10) as response:  # noqa: S310
            assert response.read() == b"s3cr3t"
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "data" / "donjon.sqlite") as db:
        rows = db.execute("SELECT root_key_id, wrapped_key FROM project_keks").fetchall()
    assert [r[0] for r in rows] == [f"vault:transit/{key_name}"]
    assert rows[0][1][:1] == b"\x01" and len(rows[0][1]) == 1 + 4 + 12 + 32 + 16
    assert openbao.token not in server.log.read_text()
    print(f"donjon (vault keystore) answered {startup:.2f}s after spawn; bao was healthy in {openbao.started_in:.2f}s")
