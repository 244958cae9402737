"""The shape of a wrapped KEK, shared by the keystores (which make and open it) and storage (which keeps it).

A leaf module, so that storage does not import the keystore plugins to name a row's type;
``donjon.keystores`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WrappedKey:
    """A KEK as stored: which root key wrapped it, and the opaque wrapped bytes."""

    root_key_id: str
    blob: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(root_key_id={self.root_key_id!r}, blob=<{len(self.blob)} bytes>)"
