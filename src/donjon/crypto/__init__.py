"""Envelope encryption: root key (in a keystore) -> project KEK -> AES-256-GCM payload bound to its secret."""

from donjon.crypto._aead import DecryptionFailed
from donjon.crypto.envelope import open_payload, seal_payload

__all__ = ["DecryptionFailed", "open_payload", "seal_payload"]
