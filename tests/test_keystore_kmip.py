"""The KMIP keystore against a real PyKMIP server (mutual TLS): conformance, finding the root again, refusals,
concurrency, reconnection, and a donjon server keeping its root key on the KMIP server."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from donjon.config import CONFIG_ENV, Settings
from donjon.crypto import DecryptionFailed
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey, open_keystore
from donjon.keystores.kmip import KmipKeystore
from tests.components.kmip import CLIENT_CN, KmipServer, TestCa
from tests.keystore_conformance import exercise_keystore, exercise_persistence
from tests.live_server import LiveServer


def fresh_name() -> str:
    return f"donjon-test-{uuid.uuid4().hex[:12]}"


def test_conformance(kmip_server: KmipServer) -> None:
    keystore = open_keystore("kmip", kmip_server.options(key_name=fresh_name()))
    try:
        exercise_keystore(keystore)
        assert keystore.root_key_id().startswith("kmip:")
    finally:
        keystore.close()


def test_persistence(kmip_server: KmipServer) -> None:
    exercise_persistence("kmip", kmip_server.options(key_name=fresh_name()))


def test_a_second_instance_finds_the_root_by_name_and_unwraps(kmip_server: KmipServer) -> None:
    name = fresh_name()
    first = KmipKeystore.from_options(kmip_server.options(key_name=name))
    wrapped = first.wrap(b"k" * 32, b"ctx")
    first.close()

    second = KmipKeystore.from_options(kmip_server.options(key_name=name, create=False))
    try:
        assert second.root_key_id() == first.root_key_id()
        assert second.unwrap(wrapped, b"ctx") == b"k" * 32
        # The same key named by its id instead of its name.
        uid = wrapped.root_key_id.removeprefix("kmip:")
        by_id = KmipKeystore.from_options(kmip_server.options(key_id=uid))
        assert by_id.root_key_id() == wrapped.root_key_id
        assert by_id.unwrap(wrapped, b"ctx") == b"k" * 32
        by_id.close()
    finally:
        second.close()


def test_several_roots_coexist_and_unwrap_finds_the_one_named(kmip_server: KmipServer) -> None:
    old = KmipKeystore.from_options(kmip_server.options(key_name=fresh_name()))
    new = KmipKeystore.from_options(kmip_server.options(key_name=fresh_name()))
    try:
        assert old.root_key_id() != new.root_key_id()
        wrapped = old.wrap(b"o" * 32, b"ctx")
        assert new.unwrap(wrapped, b"ctx") == b"o" * 32  # a rotated server still opens old KEKs
        with pytest.raises(DecryptionFailed):
            new.unwrap(WrappedKey(new.root_key_id(), wrapped.blob), b"ctx")  # relabelled: wrong key
        for bogus in ("kmip:", "kmip:999999", "file-root", ""):
            with pytest.raises(DecryptionFailed):
                new.unwrap(WrappedKey(bogus, wrapped.blob), b"ctx")
    finally:
        old.close()
        new.close()


def test_a_shortened_tag_is_refused(kmip_server: KmipServer) -> None:
    """PyKMIP's server accepts tags shorter than 16 bytes; the blob's fixed layout must never send one."""
    keystore = KmipKeystore.from_options(kmip_server.options(key_name=fresh_name()))
    try:
        wrapped = keystore.wrap(os.urandom(32), b"ctx")
        for cut in (1, 4, 8):
            with pytest.raises(DecryptionFailed):
                keystore.unwrap(WrappedKey(wrapped.root_key_id, wrapped.blob[:-cut]), b"ctx")
        for short in (b"", b"\x01", wrapped.blob[: 1 + 12 + 16]):
            with pytest.raises(DecryptionFailed):
                keystore.unwrap(WrappedKey(wrapped.root_key_id, short), b"ctx")
    finally:
        keystore.close()


def test_create_false_with_an_unknown_name_is_a_configuration_error(kmip_server: KmipServer) -> None:
    with pytest.raises(ConfigurationError, match="no usable key named .* create is false"):
        KmipKeystore.from_options(kmip_server.options(key_name=fresh_name(), create=False))
    with pytest.raises(ConfigurationError, match="not usable"):
        KmipKeystore.from_options(kmip_server.options(key_id="999999"))


def test_options_are_validated(kmip_server: KmipServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option 'pin' \(the options are"):
        open_keystore("kmip", kmip_server.options(pin="1234"))
    with pytest.raises(ConfigurationError, match=r"unknown option 'key_nme' \(did you mean 'key_name'"):
        open_keystore("kmip", kmip_server.options(key_nme="root"))
    with pytest.raises(ConfigurationError, match="option 'host' is required"):
        open_keystore("kmip", {k: v for k, v in kmip_server.options().items() if k != "host"})
    with pytest.raises(ConfigurationError, match="option 'port' must be a whole number, not 'many'"):
        open_keystore("kmip", kmip_server.options(port="many"))
    with pytest.raises(ConfigurationError, match="option 'create' must be true or false, not 'perhaps'"):
        open_keystore("kmip", kmip_server.options(create="perhaps"))
    with pytest.raises(ConfigurationError, match="cannot load the client certificate"):
        open_keystore("kmip", kmip_server.options(keyfile=str(tmp_path / "missing.key")))


def test_a_client_without_a_valid_certificate_is_refused(kmip_server: KmipServer, tmp_path: Path) -> None:
    # A certificate from a CA the server does not trust: the server ends the TLS handshake.
    stranger = TestCa(tmp_path / "stranger", name="stranger-ca").issue("client", CLIENT_CN, server=False)
    with pytest.raises(ConfigurationError, match=r"cannot use KMIP server 127\.0\.0\.1:\d+") as refused:
        KmipKeystore.from_options(kmip_server.options(certfile=str(stranger.cert), keyfile=str(stranger.key)))
    assert stranger.key.read_text() not in str(refused.value)

    # A certificate from the right CA but not issued for client authentication (no clientAuth usage).
    not_client = kmip_server.ca.issue("not-a-client", CLIENT_CN, server=True)
    with pytest.raises(ConfigurationError, match="UNSUPPORTED_CERTIFICATE"):
        KmipKeystore.from_options(kmip_server.options(certfile=str(not_client.cert), keyfile=str(not_client.key)))

    # And the other way round: a client that does not trust the server's CA refuses to talk to it.
    with pytest.raises(ConfigurationError, match="CERTIFICATE_VERIFY_FAILED"):
        KmipKeystore.from_options(kmip_server.options(ca_certs=str(tmp_path / "stranger" / "stranger-ca.crt")))


def test_an_unreachable_server_is_a_configuration_error(kmip_server: KmipServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ConfigurationError, match="Connection refused"):
        KmipKeystore.from_options(kmip_server.options(port=port, timeout=2))


def test_concurrent_wraps_and_unwraps(kmip_server: KmipServer) -> None:
    keystore = KmipKeystore.from_options(kmip_server.options(key_name=fresh_name(), pool_size=4))
    threads, rounds = 12, 25

    def work(worker: int) -> int:
        done = 0
        for i in range(rounds):
            key, context = os.urandom(32), f"donjon/kek/v1\x00kek-{worker}-{i}".encode()
            wrapped = keystore.wrap(key, context)
            assert keystore.unwrap(wrapped, context) == key
            done += 2
        return done

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(work, range(threads)))
        elapsed = time.perf_counter() - started
        assert total == 2 * threads * rounds
        print(f"\nKMIP keystore: {total} wrap/unwrap, {threads} threads: {elapsed:.2f}s, {total / elapsed:.0f}/s")
    finally:
        keystore.close()


def test_concurrent_first_starts_agree_on_one_root(kmip_server: KmipServer) -> None:
    name, ids, errors = fresh_name(), [], []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            keystore = KmipKeystore.from_options(kmip_server.options(key_name=name))
            ids.append(keystore.root_key_id())
            keystore.close()
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)

    workers = [threading.Thread(target=start) for _ in range(6)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors
    assert len(set(ids)) == 1


def test_a_dropped_connection_is_replaced(kmip_server: KmipServer) -> None:
    keystore = KmipKeystore.from_options(kmip_server.options(key_name=fresh_name(), pool_size=2))
    try:
        wrapped = keystore.wrap(b"r" * 32, b"ctx")
        # As if the server or a middlebox had closed every idle connection.
        for connection in keystore._pool._idle:
            connection._sock.shutdown(socket.SHUT_RDWR)
        assert keystore.unwrap(wrapped, b"ctx") == b"r" * 32
        assert keystore.unwrap(keystore.wrap(b"s" * 32, b"ctx"), b"ctx") == b"s" * 32
    finally:
        keystore.close()
    with pytest.raises(Exception, match="closed"):
        keystore.wrap(b"t" * 32, b"ctx")


def test_settings_from_a_toml_file_reach_the_keystore(
    kmip_server: KmipServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = kmip_server.options(key_name=fresh_name(), create=True)
    lines = ["[keystore]", 'type = "kmip"', "", "[keystore.options]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]  # JSON strings/ints/bools are TOML too
    config = tmp_path / "donjon.toml"
    config.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    settings = Settings()
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    try:
        exercise_keystore(keystore)
    finally:
        keystore.close()


@pytest.mark.live
def test_a_donjon_server_keeps_its_root_key_on_the_kmip_server(kmip_server: KmipServer, tmp_path: Path) -> None:
    name = fresh_name()
    env = {"DONJON_KEYSTORE__TYPE": "kmip"}
    env.update({f"DONJON_KEYSTORE__OPTIONS__{k.upper()}": str(v) for k, v in kmip_server.options().items()})
    env["DONJON_KEYSTORE__OPTIONS__KEY_NAME"] = name
    server = LiveServer(tmp_path / "donjon", env=env).start()
    try:
        refs = {}
        for project in ("kmip-a", "kmip-b"):
            payload = os.urandom(24)
            status, body = _request(
                server,
                "POST",
                "/v1/secrets",
                project,
                {
                    "payload": base64.b64encode(payload).decode(),
                    "payload_content_type": "application/octet-stream",
                    "payload_content_encoding": "base64",
                },
            )
            assert status == 201, body
            refs[project] = (json.loads(body)["secret_ref"].rsplit("/", 1)[-1], payload)
        for _ in range(3):  # several requests: both worker processes open their own KMIP connections
            for project, (secret_id, payload) in refs.items():
                status, body = _request(
                    server, "GET", f"/v1/secrets/{secret_id}/payload", project, accept="application/octet-stream"
                )
                assert (status, body) == (200, payload)
    finally:
        server.stop()

    # The project KEKs are wrapped by the KMIP root, and the same root is found again by name.
    with sqlite3.connect(tmp_path / "donjon" / "donjon.sqlite") as db:
        roots = {row[0] for row in db.execute("SELECT root_key_id FROM project_keks")}
    keystore = KmipKeystore.from_options(kmip_server.options(key_name=name, create=False))
    try:
        assert roots == {keystore.root_key_id()}
    finally:
        keystore.close()
    assert not (tmp_path / "donjon" / "root.key").exists(), "no file keystore was created on the side"


def _request(
    server: LiveServer, method: str, path: str, project: str, body: object = None, accept: str = "application/json"
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"X-Project-Id": project, "Accept": accept}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    try:
        conn.request(method, path, data, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
