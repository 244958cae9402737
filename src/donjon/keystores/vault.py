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
import os
import re
import stat
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
import hvac.exceptions  # type: ignore[import-untyped]
import requests

from donjon.crypto import DecryptionFailed
from donjon.errors import ConfigurationError, DonjonError
from donjon.keystores import WrappedKey

log = logging.getLogger("donjon.keystores.vault")

_BLOB_VERSION = b"\x01"
_KEY_VERSION_BYTES = 4
# The key type donjon creates and accepts: AES-256-GCM is what takes associated data the way we use it.
_KEY_TYPE = "aes256-gcm96"
# nonce (12) + tag (16): anything shorter cannot be a transit AES-GCM ciphertext.
_MIN_SEALED = 12 + 16
_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/]+={0,2})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MOUNT = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_DEFAULT_TOKEN_ENV = "DONJON_VAULT_TOKEN"
_OPTIONS = {
    "url",
    "token_file",
    "token_env",
    "mount",
    "key_name",
    "create",
    "ca_cert",
    "verify",
    "timeout",
    "namespace",
}

T = TypeVar("T")


class VaultKeystoreError(DonjonError):
    """Vault could not be used: unreachable, permission denied, key gone, or an unexpected answer.

    Distinct from ``DecryptionFailed`` on purpose: an outage or a revoked token is not evidence of tampering.
    Messages name the URL and the operation, never the token or any key material.
    """


class VaultKeystore:
    def __init__(
        self,
        *,
        url: str,
        token: str,
        mount: str = "transit",
        key_name: str = "donjon-root",
        verify: bool | str = True,
        timeout: float = 10.0,
        namespace: str | None = None,
        token_file: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.mount = mount
        self.key_name = key_name
        self._token = token
        self._token_file = token_file
        self._token_generation = 0
        self._verify = verify
        self._timeout = timeout
        self._namespace = namespace
        self._root_key_id = f"vault:{mount}/{key_name}"
        self._lock = threading.Lock()
        # One hvac client (one requests.Session) per thread: requests does not promise that a Session is
        # thread-safe, and a client per thread costs one keep-alive connection per server thread.
        self._local = threading.local()
        self._clients: weakref.WeakSet[hvac.Client] = weakref.WeakSet()
        self._closed = False

    def __repr__(self) -> str:
        return f"VaultKeystore(url={self.url!r}, key={self.mount + '/' + self.key_name!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> VaultKeystore:
        """Validate the options, connect, check (or create) the transit key; ConfigurationError if unusable."""
        if "token" in options:
            raise ConfigurationError(
                "vault keystore: a token does not belong in the configuration; use 'token_file' or 'token_env'"
            )
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"vault keystore: unknown options {sorted(unknown)}")
        url = _url(options.get("url"))
        token, token_file = _token(options)
        mount = str(options.get("mount", "transit")).strip("/")
        if not _MOUNT.fullmatch(mount):
            raise ConfigurationError(f"vault keystore: 'mount' {mount!r} is not a mount path")
        key_name = str(options.get("key_name", "donjon-root"))
        if not _NAME.fullmatch(key_name):
            raise ConfigurationError(f"vault keystore: 'key_name' {key_name!r} is not a transit key name")
        create = _bool(options, "create", True)
        verify: bool | str = _bool(options, "verify", True)
        if "ca_cert" in options:
            if not verify:
                raise ConfigurationError("vault keystore: 'ca_cert' and 'verify = false' contradict each other")
            ca_cert = Path(str(options["ca_cert"]))
            if not ca_cert.is_file():
                raise ConfigurationError(f"vault keystore: 'ca_cert' {str(ca_cert)!r} is not a file")
            verify = str(ca_cert)
        timeout = _positive_float(options, "timeout", 10.0)
        namespace = options.get("namespace")
        keystore = cls(
            url=url,
            token=token,
            mount=mount,
            key_name=key_name,
            verify=verify,
            timeout=timeout,
            namespace=str(namespace) if namespace else None,
            token_file=token_file,
        )
        try:
            keystore.ensure_key(create=create)
        except BaseException:
            keystore.close()
            raise
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
        except _Missing as missing:
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
        except _Refused as refused:
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
        with self._lock:
            self._closed = True
            clients = list(self._clients)
            self._clients.clear()
            self._token = ""
        for client in clients:
            client.adapter.close()

    # -- plumbing -----------------------------------------------------------------------------------------

    def _client(self) -> hvac.Client:
        local = self._local
        client: hvac.Client | None = getattr(local, "client", None)
        with self._lock:
            if self._closed:
                raise VaultKeystoreError("vault keystore: used after close()")
            token, generation = self._token, self._token_generation
            if client is None:
                client = hvac.Client(
                    url=self.url, token=token, verify=self._verify, timeout=self._timeout, namespace=self._namespace
                )
                self._clients.add(client)
                local.client = client
                local.generation = generation
            elif local.generation != generation:
                client.token = token
                local.generation = generation
        return client

    def _reload_token(self, used: str) -> bool:
        """Re-read the token file after a refusal: an agent (Vault/OpenBao Agent) may have renewed it."""
        if self._token_file is None:
            return False
        try:
            fresh = _read_token_file(self._token_file)
        except ConfigurationError:
            return False
        if fresh == used:
            return False  # the file still holds the refused token
        with self._lock:
            if fresh != self._token:  # another thread may have loaded it already
                self._token = fresh
                self._token_generation += 1
        return True

    def _call(
        self,
        operation: str,
        request: Callable[[hvac.Client], T],
        *,
        missing_ok: bool = False,
        refused_ok: bool = False,
    ) -> T:
        """Run one request, turning every failure into VaultKeystoreError (or _Missing/_Refused when asked)."""
        for attempt in (1, 2):
            client = self._client()
            try:
                return request(client)
            except hvac.exceptions.Forbidden:
                if attempt == 1 and self._reload_token(client.token):
                    continue
                raise VaultKeystoreError(
                    f"vault keystore: permission denied by {self.url} to {operation} with key "
                    f"{self.mount + '/' + self.key_name!r}: the token is invalid or expired, or its policy "
                    "does not allow this path"
                ) from None
            except hvac.exceptions.InvalidPath as exc:
                if missing_ok:
                    raise _Missing(no_route=any("no handler for route" in e for e in exc.errors or ())) from None
                raise VaultKeystoreError(
                    f"vault keystore: {self.url} has no {self.mount + '/' + self.key_name!r} to {operation} "
                    "(mount or key missing)"
                ) from None
            except hvac.exceptions.InvalidRequest as exc:
                reason = self._reason(exc)
                if refused_ok:
                    raise _Refused(reason) from None
                raise VaultKeystoreError(f"vault keystore: {self.url} refused to {operation}: {reason}") from None
            except hvac.exceptions.VaultError as exc:
                raise VaultKeystoreError(
                    f"vault keystore: {self.url} failed to {operation} ({type(exc).__name__}): {self._reason(exc)}"
                ) from None
            except requests.exceptions.RequestException as exc:
                # The type only: requests' messages are long and repeat the URL, never the token, but be terse.
                raise VaultKeystoreError(
                    f"vault keystore: cannot reach {self.url} to {operation} ({type(exc).__name__})"
                ) from None
        raise AssertionError("unreachable")

    def _reason(self, exc: hvac.exceptions.VaultError) -> str:
        reason = "; ".join(str(e) for e in exc.errors or ()) or "no detail"
        reason = " ".join(reason.split())[:200]
        # Defence in depth: a server is not expected to echo the token, but make sure no message can.
        token = self._token
        return reason.replace(token, "<token>") if token else reason


class _Missing(Exception):
    def __init__(self, *, no_route: bool) -> None:
        super().__init__("not found")
        self.no_route = no_route


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _associated_data(context: bytes) -> str:
    # The blob version is authenticated too, so a blob cannot be re-labelled as another format.
    return base64.b64encode(_BLOB_VERSION + context).decode()


def _url(value: Any) -> str:
    if not value:
        raise ConfigurationError("vault keystore: 'url' is required (e.g. https://vault.example:8200)")
    url = str(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"vault keystore: 'url' {url!r} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        log.warning("vault keystore: %s is plain HTTP: the token and wrapped keys cross the network unencrypted", url)
    return url


def _token(options: Mapping[str, Any]) -> tuple[str, Path | None]:
    if "token_file" in options and "token_env" in options:
        raise ConfigurationError("vault keystore: give either 'token_file' or 'token_env', not both")
    if "token_file" in options:
        path = Path(str(options["token_file"]))
        return _read_token_file(path), path
    name = str(options.get("token_env", _DEFAULT_TOKEN_ENV))
    token = os.environ.get(name, "").strip()
    if not token:
        raise ConfigurationError(f"vault keystore: environment variable {name} (the Vault token) is not set")
    return token, None


def _read_token_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        # Others may not read it; the group may, as an agent's sink file is often 0640 for a service group.
        if mode & stat.S_IRWXO:
            raise ConfigurationError(
                f"vault keystore: token file {path} is readable by others (mode {oct(mode & 0o777)}); chmod 600"
            )
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigurationError(f"vault keystore: cannot read token file {path} ({exc.strerror})") from None
    if not token:
        raise ConfigurationError(f"vault keystore: token file {path} is empty")
    return token


def _bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    # Environment variables (DONJON_KEYSTORE__OPTIONS__CREATE=false) arrive as strings.
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"vault keystore: {name!r} must be true or false, not {value!r}")


def _positive_float(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number > 0:
        raise ConfigurationError(f"vault keystore: {name!r} must be a positive number of seconds, not {value!r}")
    return number
