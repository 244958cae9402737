"""The file keystore: conformance, key file generation and the checks made when opening it."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from donjon.errors import ConfigurationError
from donjon.keystores import open_keystore
from donjon.keystores.file import FileKeystore
from tests.keystore_conformance import exercise_keystore, exercise_persistence


def test_conformance(tmp_path: Path) -> None:
    exercise_keystore(open_keystore("file", {"path": str(tmp_path / "root.key")}))


def test_persistence(tmp_path: Path) -> None:
    exercise_persistence("file", {"path": str(tmp_path / "root.key")})


def test_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "root.key"
    first = FileKeystore.from_options({"path": str(path)})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wrapped = first.wrap(b"k" * 32, b"ctx")
    second = FileKeystore.from_options({"path": str(path)})
    assert second.root_key_id() == first.root_key_id()
    assert second.unwrap(wrapped, b"ctx") == b"k" * 32


def test_concurrent_first_start_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        ids.append(FileKeystore.from_options({"path": str(path)}).root_key_id())

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "root.key"], "temporary files left behind"


def test_refuses_a_readable_key_file(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    FileKeystore.from_options({"path": str(path)})
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        FileKeystore.from_options({"path": str(path)})


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"format": "other", "keys": []}), json.dumps({"format": "donjon-root-keys/1", "keys": []})],
)
def test_refuses_a_malformed_key_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "root.key"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigurationError):
        FileKeystore.from_options({"path": str(path)})


def test_a_second_key_unwraps_old_wraps_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    old = FileKeystore.from_options({"path": str(path)})
    wrapped = old.wrap(b"x" * 32, b"ctx")
    body = json.loads(path.read_text())
    body["keys"].insert(0, {"id": "new-root", "key": "A" * 43 + "="})
    path.write_text(json.dumps(body))
    rotated = FileKeystore.from_options({"path": str(path)})
    assert rotated.root_key_id() == "new-root"
    assert rotated.unwrap(wrapped, b"ctx") == b"x" * 32
    assert rotated.wrap(b"y" * 32, b"ctx").root_key_id == "new-root"


def test_unknown_options_and_types_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option 'pin' \(the options are create, path"):
        open_keystore("file", {"path": str(tmp_path / "k"), "pin": "1234"})
    with pytest.raises(ConfigurationError, match=r"unknown option 'paht' \(did you mean 'path'"):
        open_keystore("file", {"paht": str(tmp_path / "k")})
    with pytest.raises(ConfigurationError, match="option 'create' must be true or false, not 'maybe'"):
        open_keystore("file", {"path": str(tmp_path / "k"), "create": "maybe"})
    with pytest.raises(ConfigurationError, match="unknown keystore type"):
        open_keystore("hsm-of-dreams", {})
    with pytest.raises(ConfigurationError, match="does not exist"):
        open_keystore("file", {"path": str(tmp_path / "missing"), "create": False})
