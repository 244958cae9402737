"""One conformance suite for every keystore. A keystore is done when ``exercise_keystore`` and
``exercise_persistence`` pass on it.

``exercise_keystore`` takes a freshly opened keystore and checks the contract of ``donjon.keystores.Keystore``;
``exercise_persistence`` takes the keystore's type and options and checks that what one instance wrapped is
unwrapped by the next one opened with the same configuration, in this process and in another (server workers,
a restart, the CLI's operator commands).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from donjon.crypto import DecryptionFailed
from donjon.keystores import Keystore, WrappedKey, open_keystore

_UNWRAP_IN_ANOTHER_PROCESS = """
import json, sys
from donjon.keystores import WrappedKey, open_keystore
job = json.loads(sys.stdin.read())
keystore = open_keystore(job["type"], job["options"])
try:
    print(keystore.unwrap(WrappedKey(job["id"], bytes.fromhex(job["blob"])), b"ctx").hex())
finally:
    keystore.close()
"""


def exercise_keystore(keystore: Keystore) -> None:
    key = os.urandom(32)
    context = b"donjon/kek/v1\x00kek-1\x00project-a"
    root_id = keystore.root_key_id()
    assert isinstance(root_id, str) and root_id

    wrapped = keystore.wrap(key, context)
    assert wrapped.root_key_id == root_id
    assert key not in wrapped.blob, "the wrapped form must not contain the key"
    assert keystore.unwrap(wrapped, context) == key

    # Wrapping is randomized: the same key wrapped twice gives different blobs that both unwrap.
    again = keystore.wrap(key, context)
    assert again.blob != wrapped.blob
    assert keystore.unwrap(again, context) == key

    # Bound to its context: another KEK id or project does not unwrap.
    for other in (b"donjon/kek/v1\x00kek-2\x00project-a", b"donjon/kek/v1\x00kek-1\x00project-b", b""):
        with pytest.raises(DecryptionFailed):
            keystore.unwrap(wrapped, other)

    # Tampering anywhere is detected, opaquely.
    for i in (0, len(wrapped.blob) // 2, len(wrapped.blob) - 1):
        flipped = bytearray(wrapped.blob)
        flipped[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            keystore.unwrap(WrappedKey(wrapped.root_key_id, bytes(flipped)), context)
    with pytest.raises(DecryptionFailed):
        keystore.unwrap(WrappedKey(wrapped.root_key_id, wrapped.blob[:-1]), context)
    with pytest.raises(DecryptionFailed):
        keystore.unwrap(WrappedKey("no-such-root-key", wrapped.blob), context)

    # The repr of what is stored never shows key material.
    assert wrapped.blob.hex() not in repr(wrapped)
    assert key.hex() not in repr(keystore)


def exercise_persistence(keystore_type: str, options: Mapping[str, Any]) -> None:
    key = os.urandom(32)
    first = open_keystore(keystore_type, options)
    try:
        wrapped = first.wrap(key, b"ctx")
    finally:
        first.close()  # for the tokens: the last user finalises the module, which the next open initialises again

    again = open_keystore(keystore_type, options)
    try:
        assert again.root_key_id() == wrapped.root_key_id
        assert again.unwrap(wrapped, b"ctx") == key
    finally:
        again.close()

    job = {"type": keystore_type, "options": dict(options), "id": wrapped.root_key_id, "blob": wrapped.blob.hex()}
    done = subprocess.run(
        [sys.executable, "-c", _UNWRAP_IN_ANOTHER_PROCESS],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == key.hex()
