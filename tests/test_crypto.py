"""Envelope encryption: payloads are bound to their secret and project, and failures are opaque."""

from __future__ import annotations

import os

import pytest

from donjon.crypto import DecryptionFailed, _aead, open_payload, seal_payload
from donjon.crypto.envelope import new_kek


def test_round_trip_and_binding() -> None:
    kek = new_kek()
    plaintext = os.urandom(100)
    blob = seal_payload(kek, plaintext, secret_id="s1", project_id="p1")
    assert plaintext not in blob
    assert blob[0] == 1, "blobs start with their format version"
    assert open_payload(kek, blob, secret_id="s1", project_id="p1") == plaintext
    for secret_id, project_id in (("s2", "p1"), ("s1", "p2"), ("s1\x00p1", ""), ("", "s1\x00p1")):
        with pytest.raises(DecryptionFailed):
            open_payload(kek, blob, secret_id=secret_id, project_id=project_id)
    with pytest.raises(DecryptionFailed):
        open_payload(new_kek(), blob, secret_id="s1", project_id="p1")


def test_nonces_are_fresh() -> None:
    kek = new_kek()
    blobs = {seal_payload(kek, b"same", secret_id="s", project_id="p") for _ in range(50)}
    assert len(blobs) == 50


@pytest.mark.parametrize("mutate", [lambda b: b[:-1], lambda b: b"\x02" + b[1:], lambda b: b[:12], lambda b: b""])
def test_malformed_blobs_fail_opaquely(mutate: object) -> None:
    kek = new_kek()
    blob = seal_payload(kek, b"payload", secret_id="s", project_id="p")
    with pytest.raises(DecryptionFailed) as info:
        open_payload(kek, mutate(blob), secret_id="s", project_id="p")  # type: ignore[operator]
    assert str(info.value) == "decryption failed"


def test_key_size_is_checked() -> None:
    with pytest.raises(ValueError):
        _aead.seal(b"short", b"x", b"")
