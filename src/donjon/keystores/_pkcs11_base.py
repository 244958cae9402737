"""What the PKCS#11 keystores (``pkcs11``, ``nss``) share: their options, the root key, the blob.

The root key is an AES-256 secret key inside the token, generated there, never extractable. A KEK is wrapped by
encrypting it inside the token with CKM_AES_GCM under that key, with the context as associated data: one
mechanism gives confidentiality, integrity and the binding to the context, and every token we target (SoftHSM2,
NSS softoken, HSMs) implements it.

Blob: ``version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)``; the associated data fed to the
token is ``version || context``, so a blob cannot be re-labelled as another format.

Loading and initialising the module, the PIN, the login shared by every user of a token in this process, the
session pool and key look-ups are the PKCS#11 driver's (``donjon.drivers.pkcs11``).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self, cast

from pkcs11 import Mechanism
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin, SecretKey
from pydantic import Field

from donjon.crypto import DecryptionFailed
from donjon.drivers.pkcs11.errors import DECRYPT_MISMATCH, TokenUnavailable
from donjon.drivers.pkcs11.keys import find_or_create_root_key, find_secret_keys
from donjon.drivers.pkcs11.module import find_library
from donjon.drivers.pkcs11.pins import PinOptions
from donjon.drivers.pkcs11.session import PooledSession, SharedToken, log_in, log_out
from donjon.keystores import WrappedKey
from donjon.options import Flag, Integer, Text

VERSION = b"\x01"  # AES-256-GCM inside the token, 96-bit random nonce, 128-bit tag
NONCE_BYTES = 12
TAG_BYTES = 16


class TokenKeystoreOptions(PinOptions):
    """The options of both PKCS#11 keystores; each adds where its token is."""

    library: Text | None = None  # the module's .so; default: found in the usual places
    key_label: Text = "donjon-root"  # the root key's CKA_LABEL
    create: Flag = True  # generate the root key in the token on first use
    sessions: Integer = Field(8, ge=1, le=1024)  # the most sessions open at once


def format_root_key_id(prefix: str, label: str, key_id: bytes) -> str:
    """``<prefix>:<label>:<CKA_ID hex>``: the label for people, the id to tell same-labelled keys apart."""
    return f"{prefix}:{label}:{key_id.hex()}"


def parse_root_key_id(prefix: str, root_key_id: str) -> tuple[str, bytes] | None:
    if not root_key_id.startswith(prefix + ":"):
        return None
    label, sep, id_hex = root_key_id[len(prefix) + 1 :].rpartition(":")
    if not sep or not label:
        return None
    try:
        return label, bytes.fromhex(id_hex)
    except ValueError:
        return None


class Pkcs11Base:
    """A keystore over one root key in one token; subclasses say which module and token, and how to open them."""

    # The keystore's type: the root key ids' prefix; "<type> keystore" in messages, DONJON_<TYPE>_PIN the PIN's
    # default variable.
    _prefix = "pkcs11"
    _libraries: tuple[str, ...] = ()  # where the module usually is, when 'library' is not given
    _library_kind = "PKCS#11 module"

    @classmethod
    def _what(cls) -> str:
        return f"{cls._prefix} keystore"

    def __init__(self, shared: SharedToken, label: str, key_id: bytes) -> None:
        self._token: SharedToken | None = shared
        self._module = shared.module  # loaded for the life of the process
        self._label = label
        self._current = format_root_key_id(self._prefix, label, key_id)
        self._close_lock = threading.Lock()

    @classmethod
    def _open(cls, init_args: ctypes.Structure, init_key: str, token_label: str, opts: TokenKeystoreOptions) -> Self:
        """Log in to the token and find (or create) the root key; on failure, release what was taken."""
        what = cls._what()
        library = opts.library or find_library(cls._libraries, what, cls._library_kind)
        pins = opts.pin_source(f"DONJON_{cls._prefix.upper()}_PIN")
        shared = log_in(library, init_args, init_key, token_label, pins, what, opts.sessions)
        try:
            with shared.setup_lock, shared.borrow() as pooled:
                key_id = find_or_create_root_key(pooled.session, opts.key_label, opts.create, what)
        except BaseException:
            log_out(shared)
            raise
        return cls(shared, opts.key_label, key_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root_key_id={self._current!r})"

    def root_key_id(self) -> str:
        return self._current

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        if not key:
            raise ValueError("nothing to wrap")
        nonce = os.urandom(NONCE_BYTES)
        with self._borrow() as pooled:
            root = self._root_key(pooled, self._current)
            if root is None:
                raise TokenUnavailable(f"{self._what()}: root key {self._current} vanished from the token")
            try:
                sealed = self._encrypt(pooled, root, nonce, VERSION + context, key)
            except p11e.PKCS11Error as exc:
                raise TokenUnavailable(f"{self._what()}: wrapping failed: {type(exc).__name__}") from None
        if len(sealed) != len(key) + TAG_BYTES:
            raise TokenUnavailable(f"{self._what()}: the token returned a malformed AES-GCM output")
        return WrappedKey(self._current, VERSION + nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        blob = wrapped.blob
        if len(blob) <= 1 + NONCE_BYTES + TAG_BYTES or blob[:1] != VERSION:
            raise DecryptionFailed
        nonce = blob[1 : 1 + NONCE_BYTES]
        with self._borrow() as pooled:
            root = self._root_key(pooled, wrapped.root_key_id)
            if root is None:
                raise DecryptionFailed
            try:
                plain = cast(DecryptMixin, root).decrypt(
                    blob[1 + NONCE_BYTES :],
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(nonce, VERSION + context, 8 * TAG_BYTES),
                )
            except DECRYPT_MISMATCH:
                raise DecryptionFailed from None
            except p11e.PKCS11Error as exc:
                raise TokenUnavailable(f"{self._what()}: unwrapping failed: {type(exc).__name__}") from None
        assert isinstance(plain, bytes)
        return plain

    def close(self) -> None:
        with self._close_lock:
            shared, self._token = self._token, None
        if shared is not None:
            log_out(shared)

    def _encrypt(self, pooled: PooledSession, key: SecretKey, nonce: bytes, aad: bytes, data: bytes) -> bytes:
        """AES-GCM inside the token: ciphertext || tag."""
        result = cast(EncryptMixin, key).encrypt(
            data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, aad, 8 * TAG_BYTES)
        )
        assert isinstance(result, bytes)  # a bytes input gives bytes, an iterable gives an iterator
        return result

    @contextmanager
    def _borrow(self) -> Iterator[PooledSession]:
        shared = self._token
        if shared is None:
            raise TokenUnavailable(f"{self._what()} is closed")
        # A DecryptionFailed comes after the token ended the operation cleanly: the session is fine.
        with shared.borrow(clean=(DecryptionFailed,)) as pooled:
            yield pooled

    def _root_key(self, pooled: PooledSession, root_key_id: str) -> SecretKey | None:
        """The root key named by ``root_key_id`` (any label: older keys unwrap after a rotation), or None."""
        key = pooled.keys.get(root_key_id)
        if key is not None:
            return key
        parsed = parse_root_key_id(self._prefix, root_key_id)
        if parsed is None:
            return None
        label, key_id = parsed
        try:
            found = find_secret_keys(pooled.session, label, key_id)
        except p11e.PKCS11Error as exc:
            raise TokenUnavailable(f"{self._what()}: key lookup failed: {type(exc).__name__}") from None
        if len(found) != 1:
            return None
        pooled.keys[root_key_id] = found[0]
        return found[0]
