"""One conformance suite for every keystore. A keystore is done when ``exercise_keystore`` passes on it.

Call it from a test with a freshly opened keystore; it checks the contract of ``donjon.keystores.Keystore``.
"""

from __future__ import annotations

import os

import pytest

from donjon.crypto import DecryptionFailed
from donjon.keystores import Keystore, WrappedKey


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
