"""The configured secret stores, which one a new secret goes to, and the ``/v1/secret-stores`` API.

``database`` (donjon's envelope in SQL) always exists; ``stores`` in the configuration adds external ones.
With no external store, the API answers as Barbican does with multiple backends disabled (404). A new
secret goes to its project's preferred store, else the global default; an existing secret is always read
from the store named in its row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from donjon.auth import Caller
from donjon.errors import ConfigurationError, NotFound, Unavailable
from donjon.policy import Policy
from donjon.services.base import Service
from donjon.storage import secret_stores as repo
from donjon.storage.database import Database
from donjon.stores import DATABASE, SecretStore, open_store
from donjon.timeutil import SYSTEM_CLOCK, Clock

# Barbican's plugin names, which clients may display: our stores map onto the closest of its plugins.
_PLUGINS = {DATABASE: ("store_crypto", "simple_crypto"), "kmip": ("kmip_plugin", None), "vault": ("vault_plugin", None)}
_ID_NAMESPACE = uuid.UUID("6f1d7e52-4c0e-4d55-9a7e-0d4f6a1c2b90")
DISABLED = "Not Found. Multiple backends support is not enabled in service configuration."


@dataclass(frozen=True)
class StoreInfo:
    name: str
    kind: str
    id: str  # stable across restarts and nodes: derived from the name
    global_default: bool

    @property
    def plugin(self) -> str:
        return _PLUGINS[self.kind][0]

    @property
    def crypto_plugin(self) -> str | None:
        return _PLUGINS[self.kind][1]


class StoreRegistry:
    def __init__(self, external: Mapping[str, SecretStore], default: str, started: datetime) -> None:
        if default != DATABASE and default not in external:
            raise ConfigurationError(f"default_store {default!r} is not 'database' or a configured store")
        if DATABASE in external:
            raise ConfigurationError("'database' is the built-in store; name configured stores otherwise")
        self._external = dict(external)
        self.default = default
        self.started = started
        kinds = {DATABASE: DATABASE} | {name: store.kind for name, store in self._external.items()}
        self._infos = [
            StoreInfo(name, kind, str(uuid.uuid5(_ID_NAMESPACE, name)), name == default) for name, kind in kinds.items()
        ]

    @classmethod
    def open(
        cls, configured: Mapping[str, tuple[str, Mapping[str, object]]], default: str, *, clock: Clock = SYSTEM_CLOCK
    ) -> StoreRegistry:
        opened: dict[str, SecretStore] = {}
        try:
            for name, (type_, options) in configured.items():
                opened[name] = open_store(type_, options)
            return cls(opened, default, clock.now())
        except BaseException:
            for store in opened.values():
                store.close()
            raise

    @property
    def multiple(self) -> bool:
        return bool(self._external)

    def infos(self) -> list[StoreInfo]:
        return list(self._infos)

    def info(self, name: str) -> StoreInfo | None:
        return next((i for i in self._infos if i.name == name), None)

    def by_id(self, store_id: str) -> StoreInfo | None:
        return next((i for i in self._infos if i.id == store_id), None)

    def store(self, name: str) -> SecretStore:
        """The external store called ``name``, for a secret whose row names it (donjon.services.payload_store
        reads, writes and destroys payloads through it)."""
        try:
            return self._external[name]
        except KeyError:
            raise Unavailable(f"The secret store {name!r} that holds this secret is not configured.") from None

    def for_new(self, preferred: str | None) -> str:
        """Where a new secret goes: the project's preferred store if it still exists, else the default."""
        if preferred is not None and (preferred == DATABASE or preferred in self._external):
            return preferred
        return self.default

    def close(self) -> None:
        for store in self._external.values():
            store.close()


class SecretStoreService(Service):
    """``/v1/secret-stores``: list, global default, and the caller's project preference."""

    def __init__(self, db: Database, policy: Policy, registry: StoreRegistry, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(db, policy, clock=clock)
        self.registry = registry

    def _enabled(self, rule: str, caller: Caller) -> None:
        self._policy.enforce(rule, caller, operation="Secret store retrieval")
        if not self.registry.multiple:
            raise NotFound(DISABLED)

    def list(self, caller: Caller) -> list[StoreInfo]:
        self._enabled("secretstores:get", caller)
        return self.registry.infos()

    def global_default(self, caller: Caller) -> StoreInfo:
        self._enabled("secretstores:get_global_default", caller)
        info = self.registry.info(self.registry.default)
        assert info is not None
        return info

    def get(self, caller: Caller, store_id: str) -> StoreInfo:
        self._enabled("secretstore:get", caller)
        return self._find(store_id)

    def preferred(self, caller: Caller) -> StoreInfo:
        self._enabled("secretstores:get_preferred", caller)
        with self._db.read() as conn:
            name = repo.preferred(conn, caller.project_id)
        info = self.registry.info(name) if name is not None else None
        if info is None:
            raise NotFound("Not Found. No preferred secret store defined for this project.")
        return info

    def set_preferred(self, caller: Caller, store_id: str) -> None:
        self._enabled("secretstore_preferred:post", caller)
        info = self._find(store_id)
        with self._db.write() as conn:
            repo.set_preferred(conn, caller.project_id, info.name, self._clock.now())

    def clear_preferred(self, caller: Caller) -> None:
        self._enabled("secretstore_preferred:delete", caller)
        with self._db.write() as conn:
            if not repo.clear_preferred(conn, caller.project_id):
                raise NotFound("Not Found. No preferred secret store defined for this project.")

    def store_for_new(self, project_id: str) -> str:
        if not self.registry.multiple:
            return DATABASE
        with self._db.read() as conn:
            return self.registry.for_new(repo.preferred(conn, project_id))

    def _find(self, store_id: str) -> StoreInfo:
        info = self.registry.by_id(store_id)
        if info is None:
            raise NotFound("Not Found. Sorry but your secret store is in another castle.")
        return info
