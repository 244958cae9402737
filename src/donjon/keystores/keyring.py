"""Several keystores as one: the current one wraps, any of them unwraps.

During a root rotation to another keystore (file → HSM, say), KEKs not yet rewrapped are still under the
old root. The servers open the chain ``[current, *previous]`` so that every KEK unwraps whichever root holds
it at that moment; ``donjon manage rotate-root`` moves them all to the current root, after which the
previous keystores can be removed from the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from donjon.crypto import DecryptionFailed
from donjon.keystores import Keystore, WrappedKey, open_keystore


class KeyRing:
    def __init__(self, current: Keystore, previous: Sequence[Keystore]) -> None:
        self.current = current
        self.previous = list(previous)

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current!r}, previous={self.previous!r})"

    def root_key_id(self) -> str:
        return self.current.root_key_id()

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        return self.current.wrap(key, context)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        # Each keystore refuses a root key id it does not hold with DecryptionFailed, so trying them in turn
        # is safe; the current one comes first because it holds nearly every KEK.
        for keystore in (self.current, *self.previous):
            try:
                return keystore.unwrap(wrapped, context)
            except DecryptionFailed:
                continue
        raise DecryptionFailed

    def close(self) -> None:
        for keystore in (self.current, *self.previous):
            keystore.close()


def open_chain(chain: Sequence[tuple[str, Mapping[str, Any]]]) -> Keystore:
    """Open ``[(type, options), ...]``: the first is current. One keystore is returned as itself."""
    opened: list[Keystore] = []
    try:
        for type_, options in chain:
            opened.append(open_keystore(type_, options))
    except BaseException:
        for keystore in opened:
            keystore.close()
        raise
    if len(opened) == 1:
        return opened[0]
    return KeyRing(opened[0], opened[1:])
