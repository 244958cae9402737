"""The Vault / OpenBao KV v2 secret store: each payload is a KV secret under its project's own path.

Path: ``<mount>/data/<prefix>/<project id>/<secret id>`` (the project id percent-encoded), so a Vault
policy can confine a project's secrets by path; Barbican's Vault plugin puts every project under one path.
The payload is kept as base64 with the secret's type, protected by Vault's own barrier encryption and
policies. Deleting a secret deletes the KV metadata and every version, not just the newest (a soft delete
would leave it restorable). Reads check that the stored path is the one this secret's identity gives, so
a row pointed at another secret's object is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from donjon.drivers.vault import Missing, VaultConnection, VaultError, VaultOptions, VaultPath, connected
from donjon.errors import ConfigurationError
from donjon.stores import ExternalStore, PayloadInfo, PayloadMissing, StoredPayload, StoreUnavailable, reference

_WHAT = "vault secret store"


class VaultStoreOptions(VaultOptions):
    mount: VaultPath = "secret"  # a KV version 2 engine
    prefix: VaultPath = "donjon"  # the path under it that holds every project's secrets


def _store_error(failure: VaultError) -> Exception:
    return StoreUnavailable(failure.message)


class VaultSecretStore(ExternalStore):
    kind = "vault"

    def __init__(self, connection: VaultConnection, *, mount: str = "secret", prefix: str = "donjon") -> None:
        self._vault = connection
        self.mount = mount
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"VaultSecretStore(url={self._vault.url!r}, mount={self.mount!r}, prefix={self.prefix!r})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> VaultSecretStore:
        with connected(VaultStoreOptions, options, _WHAT, error=_store_error) as (opts, connection):
            store = cls(connection, mount=opts.mount, prefix=opts.prefix)
            try:
                store._check_mount()
            except StoreUnavailable as exc:
                raise ConfigurationError(exc.message) from None
        return store

    def path(self, info: PayloadInfo) -> str:
        return f"{self.prefix}/{quote(info.project_id, safe='')}/{info.secret_id}"

    def put(self, info: PayloadInfo, payload: bytes) -> StoredPayload:
        path = self.path(info)
        data = {"payload": base64.b64encode(payload).decode(), "secret_type": info.secret_type}
        # cas=0: create only. A secret id is new; an existing object there is a bug, not something to overwrite.
        self._call(
            "store a payload",
            path,
            lambda c: c.secrets.kv.v2.create_or_update_secret(path=path, secret=data, cas=0, mount_point=self.mount),
        )
        return StoredPayload(ref=path)

    def get(self, info: PayloadInfo, stored: StoredPayload) -> bytes:
        ref = reference(stored)
        if ref != self.path(info):
            raise PayloadMissing(f"secret {info.secret_id} points at another object")
        try:
            response = self._call(
                "read a payload",
                ref,
                lambda c: c.secrets.kv.v2.read_secret_version(
                    path=ref, mount_point=self.mount, raise_on_deleted_version=True
                ),
                missing_ok=True,
            )
        except Missing:
            raise PayloadMissing(f"secret {info.secret_id} is no longer in the vault store") from None
        try:
            return base64.b64decode(response["data"]["data"]["payload"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise StoreUnavailable(f"{_WHAT}: unexpected answer reading {ref!r} from {self._vault.url}") from None

    def delete(self, info: PayloadInfo, stored: StoredPayload) -> None:
        ref = reference(stored)
        if ref != self.path(info):
            raise PayloadMissing(f"secret {info.secret_id} points at another object")
        try:
            self._call(
                "delete a payload",
                ref,
                lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(path=ref, mount_point=self.mount),
                missing_ok=True,
            )
        except Missing:
            pass  # already gone

    def close(self) -> None:
        self._vault.close()

    def _check_mount(self) -> None:
        try:
            self._call(
                "read the KV mount's configuration",
                "the mount",
                lambda c: c.secrets.kv.v2.read_configuration(mount_point=self.mount),
                missing_ok=True,
            )
        except Missing:
            raise StoreUnavailable(
                f"{_WHAT}: no KV v2 engine is mounted at {self.mount + '/'!r} on {self._vault.url}; "
                f"enable it with 'bao secrets enable -path={self.mount} kv-v2'"
            ) from None

    def _call(self, operation: str, path: str, request: Any, *, missing_ok: bool = False) -> Any:
        subject = f"{self.mount}/{path}"
        return self._vault.call(operation, request, subject=repr(subject), missing_ok=missing_ok)
