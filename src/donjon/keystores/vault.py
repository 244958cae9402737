"""The Vault / OpenBao transit keystore: the root key is a transit key that never leaves the Vault server.

wrap = ``transit/encrypt`` and unwrap = ``transit/decrypt`` of the KEK, with the caller's context (and this
module's blob version) as AES-GCM associated data, so a wrapped KEK only opens for its own KEK id and project.

Blob: ``version (1 byte) || transit key version (4 bytes, big-endian) || nonce || ciphertext || tag``, i.e. the
``vault:v<N>:<base64>`` string transit returns, decoded. Storing it decoded rather than as text makes the stored
form canonical: transit reads ``vault:v0:`` as ``vault:v1:`` and would accept that edit, while here every byte
of the blob is either checked locally or authenticated by GCM, so any change is a ``DecryptionFailed``.

Rotation: ``bao write -f transit/keys/<name>/rotate`` adds a key version; new wraps use it, old blobs keep
unwrapping because they name their version. Transit's own ``rewrap`` endpoint ignores associated data (checked
on OpenBao 2.7.2: it fails authentication on these blobs), so rewrapping to the newest version is ``rewrap``
here (unwrap then wrap); after every KEK is rewrapped, ``min_decryption_version`` retires the old versions.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from typing import Any

from donjon.crypto import DecryptionFailed
from donjon.drivers.vault import (
    Missing,
    Refused,
    TransitKeyName,
    VaultConnection,
    VaultError,
    VaultOptions,
    VaultPath,
    connected,
)
from donjon.errors import ConfigurationError, DonjonError
from donjon.keystores import WrappedKey
from donjon.options import Flag

log = logging.getLogger("donjon.keystores.vault")

_BLOB_VERSION = b"\x01"
_KEY_VERSION_BYTES = 4
# The key type donjon creates and accepts: AES-256-GCM is what takes associated data the way we use it.
_KEY_TYPE = "aes256-gcm96"
# nonce (12) + tag (16): anything shorter cannot be a transit AES-GCM ciphertext.
_MIN_SEALED = 12 + 16
_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/]+={0,2})")
_WHAT = "vault keystore"


class VaultKeystoreError(DonjonError):
    """Vault could not be used: unreachable, permission denied, key gone, or an unexpected answer.

    Distinct from ``DecryptionFailed`` on purpose: an outage or a revoked token is not evidence of tampering.
    Messages name the URL and the operation, never the token or any key material.
    """


class VaultKeystoreOptions(VaultOptions):
    mount: VaultPath = "transit"  # where the transit engine is mounted
    key_name: TransitKeyName = "donjon-root"  # the transit key
    create: Flag = True  # create the key on first start


def _keystore_error(failure: VaultError) -> Exception:
    return VaultKeystoreError(failure.message)


class VaultKeystore:
    def __init__(self, connection: VaultConnection, *, mount: str = "transit", key_name: str = "donjon-root") -> None:
        self._vault = connection
        self.url = connection.url
        self.mount = mount
        self.key_name = key_name
        self._root_key_id = f"vault:{mount}/{key_name}"

    def __repr__(self) -> str:
        return f"VaultKeystore(url={self.url!r}, key={self.mount + '/' + self.key_name!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> VaultKeystore:
        """Validate the options, connect, check (or create) the transit key; ConfigurationError if unusable."""
        with connected(VaultKeystoreOptions, options, _WHAT, error=_keystore_error) as (opts, connection):
            keystore = cls(connection, mount=opts.mount, key_name=opts.key_name)
            keystore.ensure_key(create=opts.create)
        return keystore

    def ensure_key(self, *, create: bool) -> None:
        """Check that the transit key exists and fits (creating it if allowed); ConfigurationError if not."""
        where = f"transit key {self.key_name!r} on mount {self.mount!r} at {self.url}"
        try:
            info = self._read_key()
            if info is None:
                if not create:
                    raise ConfigurationError(f"vault keystore: {where} does not exist (create = false)")
                # Idempotent on the server: concurrent starters (several workers) all end up with one key.
                self._call(
                    "create the transit key",
                    lambda c: c.secrets.transit.create_key(
                        name=self.key_name, key_type=_KEY_TYPE, exportable=False, mount_point=self.mount
                    ),
                )
                log.info("vault keystore: created %s", where)
                info = self._read_key()
        except VaultKeystoreError as exc:
            raise ConfigurationError(exc.message) from None
        if info is None:
            raise ConfigurationError(f"vault keystore: {where} vanished right after creation")
        if info.get("type") != _KEY_TYPE:
            # Creating an existing key with another type succeeds silently in transit, hence the explicit check.
            raise ConfigurationError(f"vault keystore: {where} has type {info.get('type')!r}, not {_KEY_TYPE!r}")
        if info.get("derived") or info.get("convergent_encryption"):
            raise ConfigurationError(f"vault keystore: {where} is a derived key; donjon needs a plain one")

    def _read_key(self) -> dict[str, Any] | None:
        """The key's description, or None if the mount has no such key."""
        try:
            response = self._call(
                "read the transit key",
                lambda c: c.secrets.transit.read_key(name=self.key_name, mount_point=self.mount),
                missing_ok=True,
            )
        except Missing as missing:
            if missing.no_route:
                raise VaultKeystoreError(
                    f"vault keystore: no secrets engine is mounted at {self.mount + '/'!r} on {self.url}; "
                    f"enable it with 'bao secrets enable -path={self.mount} transit'"
                ) from None
            return None
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            raise VaultKeystoreError(f"vault keystore: unexpected answer reading the transit key at {self.url}")
        return data

    def root_key_id(self) -> str:
        return self._root_key_id

    def wrap(self, key: bytes, context: bytes) -> WrappedKey:
        response = self._call(
            "encrypt",
            lambda c: c.secrets.transit.encrypt_data(
                name=self.key_name,
                plaintext=base64.b64encode(key).decode(),
                associated_data=_associated_data(context),
                mount_point=self.mount,
            ),
        )
        try:
            match = _CIPHERTEXT.fullmatch(response["data"]["ciphertext"])
        except (KeyError, TypeError):
            match = None
        if match is None:
            raise VaultKeystoreError(f"vault keystore: unexpected answer to encrypt from {self.url}")
        version = int(match.group(1))
        sealed = base64.b64decode(match.group(2))
        blob = _BLOB_VERSION + version.to_bytes(_KEY_VERSION_BYTES, "big") + sealed
        return WrappedKey(self._root_key_id, blob)

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        if wrapped.root_key_id != self._root_key_id:
            raise DecryptionFailed
        blob = wrapped.blob
        head = 1 + _KEY_VERSION_BYTES
        if len(blob) < head + _MIN_SEALED or blob[:1] != _BLOB_VERSION:
            raise DecryptionFailed
        version = int.from_bytes(blob[1:head], "big")
        if version < 1:
            raise DecryptionFailed
        ciphertext = f"vault:v{version}:{base64.b64encode(blob[head:]).decode()}"
        try:
            response = self._call(
                "decrypt",
                lambda c: c.secrets.transit.decrypt_data(
                    name=self.key_name,
                    ciphertext=ciphertext,
                    associated_data=_associated_data(context),
                    mount_point=self.mount,
                ),
                refused_ok=True,
            )
        except Refused as refused:
            if "encryption key not found" in refused.reason:
                # Not tampering: the configured key was deleted or the token sees another namespace.
                raise VaultKeystoreError(
                    f"vault keystore: transit key {self.key_name!r} not found on mount {self.mount!r} at {self.url}"
                ) from None
            # Authentication failure, bad version, key version trimmed: the reason helps an operator, and
            # transit's reasons never quote the ciphertext or plaintext.
            log.warning("vault keystore: transit refused to decrypt a wrapped key: %s", refused.reason)
            raise DecryptionFailed from None
        try:
            return base64.b64decode(response["data"]["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise VaultKeystoreError(f"vault keystore: unexpected answer to decrypt from {self.url}") from None

    def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        """The same key wrapped under the transit key's newest version (after ``transit/keys/<name>/rotate``)."""
        return self.wrap(self.unwrap(wrapped, context), context)

    @staticmethod
    def key_version(wrapped: WrappedKey) -> int:
        """Which transit key version a blob was wrapped with (to find blobs still needing a rewrap)."""
        if len(wrapped.blob) < 1 + _KEY_VERSION_BYTES or wrapped.blob[:1] != _BLOB_VERSION:
            raise ValueError("not a vault keystore blob")
        return int.from_bytes(wrapped.blob[1 : 1 + _KEY_VERSION_BYTES], "big")

    def close(self) -> None:
        self._vault.close()

    def _call(self, operation: str, request: Any, *, missing_ok: bool = False, refused_ok: bool = False) -> Any:
        subject = f"key {self.mount + '/' + self.key_name!r}"
        return self._vault.call(operation, request, subject=subject, missing_ok=missing_ok, refused_ok=refused_ok)


def _associated_data(context: bytes) -> str:
    # The blob version is authenticated too, so a blob cannot be re-labelled as another format.
    return base64.b64encode(_BLOB_VERSION + context).decode()
