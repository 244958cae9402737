"""Transport keys (spec §10), served as Barbican 23 serves them: opaque cloud-wide rows that an admin
registers and deletes and any reader lists and reads. No secret store of donjon (nor of Barbican today) uses
them: ``transport_key_needed`` on a secret stays refused (api/schemas/secrets.py).
"""

from __future__ import annotations

import uuid

from donjon.auth import Caller
from donjon.errors import NotFound
from donjon.services.access import is_canonical_uuid4
from donjon.services.base import Service
from donjon.storage import transport_keys as repo


class TransportKeyService(Service):
    def create(self, caller: Caller, plugin_name: str, transport_key: str) -> str:
        self._policy.enforce("transport_keys:post", caller, operation="Transport Key Creation")
        now = self._clock.now()
        record = repo.TransportKeyRecord(str(uuid.uuid4()), plugin_name, transport_key, now, now)
        with self._db.write() as conn:
            repo.create(conn, record)
        return record.id

    def list_ids(self, caller: Caller, plugin_name: str | None, offset: int, limit: int) -> tuple[list[str], int]:
        self._policy.enforce("transport_keys:get", caller, operation="Transport Key(s) retrieval")
        with self._db.read() as conn:
            return repo.list_ids(conn, plugin_name, offset, limit)

    def get(self, caller: Caller, key_id: str) -> repo.TransportKeyRecord:
        _check_id(key_id)
        self._policy.enforce("transport_key:get", caller, operation="Transport Key retrieval")
        with self._db.read() as conn:
            record = repo.get(conn, key_id)
        if record is None:
            raise NotFound("Not Found. Transport Key not found.")
        return record

    def delete(self, caller: Caller, key_id: str) -> None:
        _check_id(key_id)
        self._policy.enforce("transport_key:delete", caller, operation="Transport Key deletion")
        with self._db.write() as conn:
            if not repo.remove(conn, key_id):
                raise NotFound("Not Found. Transport Key not found.")


def _check_id(key_id: str) -> None:
    # Barbican's _lookup refuses a malformed id before any policy check.
    if not is_canonical_uuid4(key_id):
        raise NotFound("Not Found. Provided transport key id is invalid.")
