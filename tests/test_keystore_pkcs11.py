"""The pkcs11 keystore on a real SoftHSM2 token: conformance, persistence, key attributes, PINs, threads, a server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pkcs11 import Attribute, KeyType
from pkcs11 import exceptions as p11e

from donjon.crypto import DecryptionFailed
from donjon.drivers.pkcs11.errors import TokenUnavailable
from donjon.drivers.pkcs11.native import CK_C_INITIALIZE_ARGS, CKF_OS_LOCKING_OK
from donjon.errors import ConfigurationError
from donjon.keystores import WrappedKey, open_keystore
from donjon.keystores.pkcs11 import Pkcs11Keystore
from tests.keystore_conformance import exercise_keystore, exercise_persistence
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from tests.components.softhsm import SoftHsmToken

# A plugin, not an import: pytest rewrites its asserts and owns its session fixture.
pytest_plugins = ["tests.components.softhsm"]


def open_pkcs11(token: SoftHsmToken, **extra: Any) -> Pkcs11Keystore:
    keystore = open_keystore("pkcs11", token.options(**extra))
    assert isinstance(keystore, Pkcs11Keystore)
    return keystore


@pytest.fixture
def keystore(softhsm: SoftHsmToken) -> Iterator[Pkcs11Keystore]:
    keystore = open_pkcs11(softhsm)
    yield keystore
    keystore.close()


def root_key_attributes(keystore: Pkcs11Keystore) -> dict[Attribute, Any]:
    """Read the root key's attributes through the keystore's own session (white box: the key never leaves)."""
    with keystore._borrow() as pooled:
        key = keystore._root_key(pooled, keystore.root_key_id())
        assert key is not None
        with pytest.raises(p11e.AttributeSensitive):
            key[Attribute.VALUE]
        names = (
            Attribute.KEY_TYPE,
            Attribute.VALUE_LEN,
            Attribute.TOKEN,
            Attribute.PRIVATE,
            Attribute.SENSITIVE,
            Attribute.EXTRACTABLE,
            Attribute.ALWAYS_SENSITIVE,
            Attribute.NEVER_EXTRACTABLE,
            Attribute.WRAP,
            Attribute.UNWRAP,
        )
        return {name: key[name] for name in names}


def test_conformance(keystore: Pkcs11Keystore) -> None:
    exercise_keystore(keystore)


def test_persistence(softhsm: SoftHsmToken) -> None:
    exercise_persistence("pkcs11", softhsm.options())


def test_root_key_id_names_label_and_cka_id(keystore: Pkcs11Keystore) -> None:
    prefix, label, key_id = keystore.root_key_id().split(":")
    assert (prefix, label) == ("pkcs11", "donjon-root")
    assert len(bytes.fromhex(key_id)) == 16


def test_root_key_is_generated_in_the_token_non_extractable_and_sensitive(keystore: Pkcs11Keystore) -> None:
    attributes = root_key_attributes(keystore)
    assert attributes[Attribute.KEY_TYPE] == KeyType.AES
    assert attributes[Attribute.VALUE_LEN] == 32
    assert attributes[Attribute.TOKEN] is True
    assert attributes[Attribute.PRIVATE] is True
    assert attributes[Attribute.SENSITIVE] is True
    assert attributes[Attribute.EXTRACTABLE] is False
    assert attributes[Attribute.ALWAYS_SENSITIVE] is True
    assert attributes[Attribute.NEVER_EXTRACTABLE] is True
    assert attributes[Attribute.WRAP] is False and attributes[Attribute.UNWRAP] is False


def test_blob_starts_with_its_version_and_has_the_expected_size(keystore: Pkcs11Keystore) -> None:
    wrapped = keystore.wrap(b"k" * 32, b"ctx")
    assert wrapped.blob[:1] == b"\x01"
    assert len(wrapped.blob) == 1 + 12 + 32 + 16
    with pytest.raises(DecryptionFailed):
        keystore.unwrap(WrappedKey(wrapped.root_key_id, b"\x02" + wrapped.blob[1:]), b"ctx")


def test_two_keystores_open_at_once_share_the_login(keystore: Pkcs11Keystore, softhsm: SoftHsmToken) -> None:
    second = open_pkcs11(softhsm)
    try:
        assert second.unwrap(keystore.wrap(b"s" * 32, b"c"), b"c") == b"s" * 32
    finally:
        second.close()
    assert keystore.unwrap(keystore.wrap(b"t" * 32, b"c"), b"c") == b"t" * 32  # still logged in


def test_rotation_a_new_label_wraps_and_old_wraps_still_open(keystore: Pkcs11Keystore, softhsm: SoftHsmToken) -> None:
    old = keystore.wrap(b"o" * 32, b"ctx")
    rotated = open_pkcs11(softhsm, key_label="donjon-root-2")
    try:
        assert rotated.root_key_id() != keystore.root_key_id()
        assert rotated.root_key_id().startswith("pkcs11:donjon-root-2:")
        assert rotated.unwrap(old, b"ctx") == b"o" * 32
        new = rotated.wrap(b"n" * 32, b"ctx")
        assert new.root_key_id == rotated.root_key_id()
        assert keystore.unwrap(new, b"ctx") == b"n" * 32
        # The id names one key exactly: the right label with a wrong CKA_ID does not open.
        wrong_id = keystore.root_key_id()[:-2] + ("00" if not keystore.root_key_id().endswith("00") else "01")
        with pytest.raises(DecryptionFailed):
            rotated.unwrap(WrappedKey(wrong_id, old.blob), b"ctx")
        # Both keys are AES-256 but different: a blob relabelled to the other key does not open.
        with pytest.raises(DecryptionFailed):
            rotated.unwrap(WrappedKey(rotated.root_key_id(), old.blob), b"ctx")
    finally:
        rotated.close()


def test_wrong_pin_is_a_configuration_error_that_does_not_show_the_pin(
    softhsm: SoftHsmToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + softhsm.pin
    pin_file = tmp_path / "wrong.pin"
    pin_file.write_text(wrong + "\n")
    pin_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="rejected the PIN") as refused:
        open_keystore("pkcs11", softhsm.options(pin_file=str(pin_file)))
    assert wrong not in str(refused.value) and softhsm.pin not in str(refused.value)
    assert str(pin_file) in str(refused.value)
    # Also while another keystore holds this process's login on the token (no C_Login is made then).
    monkeypatch.setenv("WRONG_PIN", wrong)
    options = {k: v for k, v in softhsm.options().items() if k != "pin_file"}
    holder = open_pkcs11(softhsm)
    try:
        with pytest.raises(ConfigurationError, match="rejected the PIN from environment variable WRONG_PIN") as shared:
            open_keystore("pkcs11", {**options, "pin_env": "WRONG_PIN"})
        assert wrong not in str(shared.value)
    finally:
        holder.close()


def test_pin_from_the_environment(softhsm: SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> None:
    options = {k: v for k, v in softhsm.options().items() if k != "pin_file"}
    monkeypatch.delenv("DONJON_PKCS11_PIN", raising=False)
    with pytest.raises(ConfigurationError, match="DONJON_PKCS11_PIN"):
        open_keystore("pkcs11", options)
    monkeypatch.setenv("DONJON_PKCS11_PIN", softhsm.pin)
    keystore = open_keystore("pkcs11", options)
    try:
        assert softhsm.pin not in repr(keystore)
        exercise_keystore(keystore)
    finally:
        keystore.close()


def test_create_false_requires_the_key(softhsm: SoftHsmToken) -> None:
    with pytest.raises(ConfigurationError, match="no root key labelled 'never-made'"):
        open_keystore("pkcs11", softhsm.options(key_label="never-made", create=False))
    made = open_pkcs11(softhsm, key_label="made-once")
    made.close()
    again = open_pkcs11(softhsm, key_label="made-once", create="false")  # as it arrives from the environment
    try:
        assert again.root_key_id() == made.root_key_id()
    finally:
        again.close()


def test_an_extractable_key_is_refused_as_root(keystore: Pkcs11Keystore, softhsm: SoftHsmToken) -> None:
    with keystore._borrow() as pooled:
        pooled.session.generate_key(
            KeyType.AES,
            256,
            label="weak-root",
            store=True,
            template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False, Attribute.ENCRYPT: True},
        )
    with pytest.raises(ConfigurationError, match="unusable: extractable, not sensitive"):
        open_keystore("pkcs11", softhsm.options(key_label="weak-root", create=False))


def test_option_checks(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option 'pin' \(did you mean 'pin_env'"):
        open_keystore("pkcs11", softhsm.options(pin="1234"))
    with pytest.raises(ConfigurationError, match=r"unknown option 'tokn_label' \(did you mean 'token_label'"):
        open_keystore("pkcs11", {"tokn_label": "x", "pin_file": str(softhsm.pin_file)})
    with pytest.raises(ConfigurationError, match="option 'token_label' is required"):
        open_keystore("pkcs11", {"pin_file": str(softhsm.pin_file)})
    with pytest.raises(ConfigurationError, match="no token labelled 'nope'"):
        open_keystore("pkcs11", softhsm.options(token_label="nope"))
    with pytest.raises(ConfigurationError, match="not both"):
        open_keystore("pkcs11", softhsm.options(pin_env="X"))
    with pytest.raises(ConfigurationError, match="cannot read pin_file"):
        open_keystore("pkcs11", softhsm.options(pin_file=str(tmp_path / "absent")))
    loose = tmp_path / "loose.pin"
    loose.write_text(softhsm.pin)
    loose.chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others") as exposed:
        open_keystore("pkcs11", softhsm.options(pin_file=str(loose)))
    assert softhsm.pin not in str(exposed.value)
    with pytest.raises(ConfigurationError, match="cannot load PKCS#11 library"):
        open_keystore("pkcs11", softhsm.options(library=str(tmp_path / "libnothing.so")))
    with pytest.raises(ConfigurationError, match="option 'sessions' must be 1 or more, not 0"):
        open_keystore("pkcs11", softhsm.options(sessions=0))
    with pytest.raises(ConfigurationError, match="option 'sessions' must be a number, not True"):
        open_keystore("pkcs11", softhsm.options(sessions=True))
    with pytest.raises(ConfigurationError, match="option 'create' must be true or false, not 'perhaps'"):
        open_keystore("pkcs11", softhsm.options(create="perhaps"))


def test_the_module_is_initialised_for_os_locking(keystore: Pkcs11Keystore) -> None:
    # Without CKF_OS_LOCKING_OK SoftHSM2 drops its mutexes; 16 threads then fail or crash it (measured).
    module = keystore._module
    assert module is not None and isinstance(module.init_args, CK_C_INITIALIZE_ARGS)
    assert module.init_args.flags & CKF_OS_LOCKING_OK


def test_a_forked_child_is_refused_rather_than_using_the_parent_sessions(keystore: Pkcs11Keystore) -> None:
    pid = os.fork()
    if pid == 0:  # the child: PKCS#11 state does not survive fork(), so it must not touch the token
        try:
            keystore.wrap(b"k" * 32, b"ctx")
        except TokenUnavailable:
            os._exit(0)
        except BaseException:
            os._exit(2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert keystore.unwrap(keystore.wrap(b"k" * 32, b"ctx"), b"ctx") == b"k" * 32


def test_closed_keystore_refuses_work(softhsm: SoftHsmToken) -> None:
    keystore = open_pkcs11(softhsm)
    keystore.close()
    keystore.close()  # idempotent
    with pytest.raises(TokenUnavailable, match="closed"):
        keystore.wrap(b"k" * 32, b"ctx")


def test_closing_under_load_lets_calls_finish_then_refuses(softhsm: SoftHsmToken) -> None:
    keystore = open_pkcs11(softhsm)
    outcomes: list[str] = []
    running = threading.Barrier(9)

    def work() -> None:
        running.wait()
        try:
            while True:
                assert keystore.unwrap(keystore.wrap(b"k" * 32, b"c"), b"c") == b"k" * 32
        except TokenUnavailable as exc:
            outcomes.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcomes.append(repr(exc))

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    running.wait()
    time.sleep(0.2)  # not a clock: lets the threads get into their wrap/unwrap calls before the close
    keystore.close()  # the last user: sessions drain, then the module is finalised
    for worker in workers:
        worker.join(10)
    assert len(outcomes) == 8 and all("closed" in o for o in outcomes), outcomes


def run_threads(keystore: Pkcs11Keystore, threads: int, rounds: int) -> float:
    """Every thread wraps and unwraps its own keys under its own contexts; returns operations per second."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                key, context = os.urandom(32), f"thread-{n}/round-{i}".encode()
                wrapped = keystore.wrap(key, context)
                assert keystore.unwrap(wrapped, context) == key
                with pytest.raises(DecryptionFailed):
                    keystore.unwrap(wrapped, context + b"!")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    assert not errors, errors[:3]
    return 3 * threads * rounds / elapsed


def test_sixteen_threads_wrap_and_unwrap_concurrently(keystore: Pkcs11Keystore) -> None:
    single = run_threads(keystore, threads=1, rounds=200)
    many = run_threads(keystore, threads=16, rounds=25)  # 1200 operations
    print(f"\npkcs11/SoftHSM2: {single:.0f} ops/s on 1 thread, {many:.0f} ops/s on 16 threads")


def test_threads_opening_keystores_at_once_agree(softhsm: SoftHsmToken) -> None:
    opened: list[Pkcs11Keystore] = []
    start = threading.Barrier(8)
    lock = threading.Lock()

    def open_one() -> None:
        start.wait()
        keystore = open_pkcs11(softhsm, key_label="raced-root")
        with lock:
            opened.append(keystore)

    workers = [threading.Thread(target=open_one) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    try:
        assert len(opened) == 8
        assert len({k.root_key_id() for k in opened}) == 1
        wrapped = opened[0].wrap(b"x" * 32, b"c")
        assert all(k.unwrap(wrapped, b"c") == b"x" * 32 for k in opened)
    finally:
        for keystore in opened:
            keystore.close()


@pytest.mark.live
def test_a_server_on_the_pkcs11_keystore_stores_and_reads_secrets(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    config = tmp_path / "donjon.toml"
    config.write_text(
        "[keystore]\n"
        'type = "pkcs11"\n'
        "[keystore.options]\n"
        f'library = "{softhsm.library}"\n'
        f'token_label = "{softhsm.token_label}"\n'
        f'pin_file = "{softhsm.pin_file}"\n'
        'key_label = "live-root"\n'
    )
    server = LiveServer(
        tmp_path / "data", env={"DONJON_CONFIG": str(config), "SOFTHSM2_CONF": str(softhsm.conf)}
    ).start()
    try:
        projects = [f"project-{uuid.uuid4()}" for _ in range(6)]

        def store_and_read(n: int) -> tuple[str, str]:
            project = projects[n % len(projects)]
            payload = f"secret {n} of {project}"
            with httpx.Client(base_url=server.url, headers={"X-Project-Id": project}, timeout=30) as client:
                created = client.post(
                    "/v1/secrets",
                    json={"name": f"s{n}", "payload": payload, "payload_content_type": "text/plain"},
                )
                assert created.status_code == 201, created.text
                ref = created.json()["secret_ref"]
                read = client.get(f"{ref}/payload", headers={"Accept": "text/plain"})
                assert read.status_code == 200, read.text
                return payload, read.text

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(store_and_read, range(24)))
        assert all(sent == got for sent, got in results)
    finally:
        server.stop()
    assert softhsm.pin not in server.log.read_text()
    # Every project KEK was wrapped by the root key the server created in the token.
    with sqlite3.connect(tmp_path / "data" / "donjon.sqlite") as db:
        root_ids = {row[0] for row in db.execute("SELECT root_key_id FROM project_keks")}
    check = open_pkcs11(softhsm, key_label="live-root", create=False)
    try:
        assert root_ids == {check.root_key_id()}
    finally:
        check.close()

    # Root rotation within the token: a new key_label, `donjon manage rotate-root`, and the secrets still read.
    rotated = tmp_path / "rotated.toml"
    rotated.write_text(
        f'data_dir = "{tmp_path / "data"}"\n' + config.read_text().replace('"live-root"', '"live-root-2"')
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    rotation = subprocess.run(
        [str(Path(sys.executable).with_name("donjon")), "manage", "rotate-root", "--config", str(rotated)],
        env={**env, "SOFTHSM2_CONF": str(softhsm.conf)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rotation.returncode == 0, rotation.stderr
    with sqlite3.connect(tmp_path / "data" / "donjon.sqlite") as db:
        (new_root,) = {row[0] for row in db.execute("SELECT root_key_id FROM project_keks")}
    assert new_root.startswith("pkcs11:live-root-2:")
    again = LiveServer(
        tmp_path / "data", env={"DONJON_CONFIG": str(rotated), "SOFTHSM2_CONF": str(softhsm.conf)}
    ).start()
    try:
        with httpx.Client(base_url=again.url, headers={"X-Project-Id": projects[0]}, timeout=30) as client:
            listed = client.get("/v1/secrets", params={"limit": 100}).json()["secrets"]
            assert len(listed) == 4  # 24 secrets over 6 projects
            for secret in listed:
                read = client.get(f"{secret['secret_ref']}/payload", headers={"Accept": "text/plain"})
                assert read.status_code == 200 and read.text.endswith(f"of {projects[0]}"), read.text
    finally:
        again.stop()
