"""The file keystore: root keys in a JSON file of mode 0600, generated on first start.

Holds a list of keys; the first is current and wraps new KEKs, every listed key can unwrap, so a root
rotation adds a key in front (``add_root_key``), rewraps every KEK (``donjon manage rotate-root``), then drops
the old one (``retire_root_keys``). Running servers re-read the file when they meet a key id they don't
hold, so a key added during their life is picked up without a restart.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from donjon.crypto import _aead
from donjon.errors import ConfigurationError
from donjon.files import read_private, write_private_once
from donjon.keystores import WrappedKey
from donjon.options import Flag, PluginOptions, Text, parse_options

_FORMAT = "donjon-root-keys/1"


class FileKeystoreOptions(PluginOptions):
    path: Text  # the key file; the server defaults it to root.key in the data dir
    create: Flag = True  # generate the file on first start if it does not exist


class FileKeystore:
    def __init__(self, keys: list[tuple[str, bytes]], path: Path) -> None:
        if not keys:
            raise ConfigurationError(f"key file {path} holds no key")
        self._keys = dict(keys)
        self._current = keys[0][0]
        self.path = path
        self._reload_lock = threading.Lock()
        self._mtime = _mtime(path)

    def __repr__(self) -> str:
        return f"FileKeystore(path={str(self.path)!r}, keys={len(self._keys)})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FileKeystore:
        opts = parse_options(FileKeystoreOptions, options, "file keystore")
        path = Path(opts.path)
        if not path.exists():
            if not opts.create:
                raise ConfigurationError(f"key file {path} does not exist")
            generate_key_file(path)
        return cls(_read_key_file(path), path)

    def root_key_id(self) -> str:
        return self._current

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        return WrappedKey(self._current, _aead.seal(self._keys[self._current], key, context))

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        root = self._keys.get(wrapped.root_key_id)
        if root is None:
            root = self._reload_for(wrapped.root_key_id)
        if root is None:
            raise _aead.DecryptionFailed
        return _aead.open_sealed(root, wrapped.blob, context)

    def _reload_for(self, key_id: str) -> bytes | None:
        """A root rotation may have added a key since this process started: re-read the file if it changed."""
        with self._reload_lock:
            mtime = _mtime(self.path)
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    keys = _read_key_file(self.path)
                except ConfigurationError:
                    return None  # keep serving with the keys already held
                # Only add keys: the current one stays until a restart, so all of this process's new wraps
                # use one root and a rotation in progress never sees wraps under a key it did not expect.
                for kid, key in keys:
                    self._keys.setdefault(kid, key)
            return self._keys.get(key_id)

    def close(self) -> None:
        self._keys.clear()


def generate_key_file(path: Path) -> None:
    """Create a key file with one fresh key; a concurrent starter's file, if first, is kept."""
    body = {
        "format": _FORMAT,
        "keys": [{"id": str(uuid.uuid4()), "key": base64.b64encode(_aead.generate_key()).decode()}],
    }
    write_private_once(path, json.dumps(body).encode())


def add_root_key(path: Path) -> str:
    """Put a new current key in front of an existing key file; returns its id. Old keys stay for unwrapping."""
    keys = _read_key_file(path)
    new_id = str(uuid.uuid4())
    _rewrite(path, [(new_id, _aead.generate_key()), *keys])
    return new_id


def retire_root_keys(path: Path, keep: set[str]) -> list[str]:
    """Drop every key of the file except the current one and those in ``keep``; returns the dropped ids."""
    keys = _read_key_file(path)
    kept = [keys[0], *[(kid, key) for kid, key in keys[1:] if kid in keep]]
    dropped = [kid for kid, _ in keys if kid not in dict(kept)]
    if dropped:
        _rewrite(path, kept)
    return dropped


def _rewrite(path: Path, keys: list[tuple[str, bytes]]) -> None:
    body = {"format": _FORMAT, "keys": [{"id": kid, "key": base64.b64encode(key).decode()} for kid, key in keys]}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(body).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one, never half of one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _read_key_file(path: Path) -> list[tuple[str, bytes]]:
    raw = read_private(path)
    try:
        body = json.loads(raw)
        if body.get("format") != _FORMAT:
            raise ValueError("format")
        keys = [(str(k["id"]), base64.b64decode(k["key"], validate=True)) for k in body["keys"]]
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(f"key file {path} is not a donjon root key file") from None
    if any(len(k) != _aead.KEY_BYTES for _, k in keys):
        raise ConfigurationError(f"key file {path} holds a key of the wrong size")
    return keys
