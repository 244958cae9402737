"""What the services that take payloads share: their keys, quotas and size limit, and where payloads go.

Secrets and KV keys were built the same way one by one; one constructor and one size check now serve both
(issue 18).
"""

from __future__ import annotations

from donjon.errors import TooLarge
from donjon.policy import Policy
from donjon.services.base import Service
from donjon.services.payload_store import PayloadStore
from donjon.services.project_keys import ProjectKeys
from donjon.services.quotas import Quotas
from donjon.services.stores import SecretStoreService
from donjon.storage.database import Database
from donjon.stores import DATABASE
from donjon.timeutil import SYSTEM_CLOCK, Clock


class PayloadService(Service):
    def __init__(
        self,
        db: Database,
        keys: ProjectKeys,
        policy: Policy,
        quotas: Quotas,
        *,
        max_secret_bytes: int,
        stores: SecretStoreService | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(db, policy, clock=clock)
        self._keys = keys
        self._quotas = quotas
        self._max_secret_bytes = max_secret_bytes
        self._stores = stores  # None: every payload stays in the database store
        self._payloads = PayloadStore(keys, stores.registry if stores is not None else None)

    def _store_for_new(self, project_id: str) -> str:
        return self._stores.store_for_new(project_id) if self._stores is not None else DATABASE

    def _check_size(self, size: int) -> None:
        """Barbican's refusal of a payload over the configured limit (KV documents get the same)."""
        if size > self._max_secret_bytes:
            raise TooLarge("Provided information too large to process")
