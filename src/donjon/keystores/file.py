"""The file keystore: root keys in a JSON file of mode 0600, generated on first start.

Holds a list of keys; the first is current and wraps new KEKs, every listed key can unwrap, so a root
rotation adds a key in front, rewraps, then drops the old one.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from donjon.crypto import _aead
from donjon.errors import ConfigurationError
from donjon.files import read_private, write_private_once
from donjon.keystores import WrappedKey

_FORMAT = "donjon-root-keys/1"


class FileKeystore:
    def __init__(self, keys: list[tuple[str, bytes]], path: Path) -> None:
        if not keys:
            raise ConfigurationError(f"key file {path} holds no key")
        self._keys = dict(keys)
        self._current = keys[0][0]
        self.path = path

    def __repr__(self) -> str:
        return f"FileKeystore(path={str(self.path)!r}, keys={len(self._keys)})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FileKeystore:
        unknown = set(options) - {"path", "create"}
        if unknown:
            raise ConfigurationError(f"file keystore: unknown options {sorted(unknown)}")
        if "path" not in options:
            raise ConfigurationError("file keystore: 'path' is required")
        path = Path(str(options["path"]))
        if not path.exists():
            if not options.get("create", True):
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
            raise _aead.DecryptionFailed
        return _aead.open_sealed(root, wrapped.blob, context)

    def close(self) -> None:
        self._keys.clear()


def generate_key_file(path: Path) -> None:
    """Create a key file with one fresh key; a concurrent starter's file, if first, is kept."""
    body = {
        "format": _FORMAT,
        "keys": [{"id": str(uuid.uuid4()), "key": base64.b64encode(_aead.generate_key()).decode()}],
    }
    write_private_once(path, json.dumps(body).encode())


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
