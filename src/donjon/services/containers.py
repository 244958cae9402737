"""Containers (spec §5): named groups of secret references (generic, rsa, certificate) and their consumers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from donjon.auth import Caller
from donjon.errors import Conflict, InvalidInput, NotFound
from donjon.policy import Policy
from donjon.services import access
from donjon.services.base import Service
from donjon.services.commands import ContainerSecretRef, NewContainer
from donjon.services.quotas import Quotas
from donjon.storage import containers as repo
from donjon.storage import secrets as secret_repo
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock

TYPES = ("generic", "rsa", "certificate")
ALLOWED_NAMES = {
    "rsa": {"public_key", "private_key", "private_key_passphrase"},
    "certificate": {"certificate", "private_key", "private_key_passphrase", "intermediates"},
}
REQUIRED_NAMES = {"rsa": {"public_key", "private_key"}, "certificate": {"certificate"}}


@dataclass(frozen=True)
class ContainerView:
    container: repo.ContainerRecord
    secrets: list[repo.ContainerSecret]
    consumers: list[repo.ContainerConsumer]


class ContainerService(Service):
    def __init__(self, db: Database, policy: Policy, quotas: Quotas, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(db, policy, clock=clock)
        self._quotas = quotas

    def create(self, caller: Caller, new: NewContainer) -> str:
        self._policy.enforce("containers:post", caller, operation="Container creation")
        now = self._clock.now()
        record = repo.ContainerRecord(
            str(uuid.uuid4()), caller.project_id, new.name, new.type, caller.user_id, now, now
        )
        with self._db.write() as conn:
            for ref in new.refs:
                # The secrets must be the caller's project's own: a container never reaches into another one.
                if not access.is_canonical_uuid4(ref.secret_id) or not secret_repo.get_secret(
                    conn, caller.project_id, ref.secret_id, now
                ):
                    raise NotFound(f"Secret provided for '{ref.name or ''}' doesn't exist.")
            self._quotas.check(conn, caller.project_id, "containers", repo.count_containers)
            repo.insert_container(conn, record, list(new.refs))
        return record.id

    def _view(self, conn: Any, record: repo.ContainerRecord) -> ContainerView:
        return ContainerView(
            record, repo.secrets_of(conn, [record.id])[record.id], repo.consumers_of(conn, [record.id])[record.id]
        )

    def get(self, caller: Caller, container_id: str) -> ContainerView:
        with self._db.read() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container:get", "Container retrieval"
            )
            return self._view(conn, record)

    def list_containers(
        self, caller: Caller, *, name: str | None, type_: str | None, offset: int, limit: int
    ) -> tuple[list[ContainerView], int]:
        self._policy.enforce("containers:get", caller, operation="Containers(s) retrieval")
        with self._db.read() as conn:
            records, total = repo.list_containers(
                conn, caller.project_id, name=name, type_=type_, offset=offset, limit=limit
            )
            ids = [r.id for r in records]
            refs, consumers = repo.secrets_of(conn, ids), repo.consumers_of(conn, ids)
        return [ContainerView(r, refs[r.id], consumers[r.id]) for r in records], total

    def delete(self, caller: Caller, container_id: str) -> None:
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container:delete", "Container deletion"
            )
            repo.delete_container(conn, record.id)

    def add_secret(self, caller: Caller, container_id: str, ref: ContainerSecretRef) -> None:
        now = self._clock.now()
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_secret:post", "Container Secret creation"
            )
            if record.type != "generic":
                raise InvalidInput("Only 'generic' containers can be modified.")
            if not access.is_canonical_uuid4(ref.secret_id) or not secret_repo.get_secret(
                conn, caller.project_id, ref.secret_id, now
            ):
                raise NotFound("Secret provided doesn't exist.")
            if not repo.add_secret(conn, record.id, ref, now):
                raise Conflict("Secret already exists in the container.")

    def remove_secret(self, caller: Caller, container_id: str, ref: ContainerSecretRef) -> None:
        now = self._clock.now()
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_secret:delete", "Container Secret deletion"
            )
            if not access.is_canonical_uuid4(ref.secret_id) or not secret_repo.get_secret(
                conn, caller.project_id, ref.secret_id, now
            ):
                raise NotFound("Secret provided doesn't exist.")
            if not repo.remove_secret(conn, record.id, ref.secret_id, ref.name, now):
                raise NotFound("Secret provided is not in the container.")

    def list_consumers(
        self, caller: Caller, container_id: str, offset: int, limit: int
    ) -> tuple[list[repo.ContainerConsumer], int]:
        with self._db.read() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_consumers:get", "Container consumers retrieval"
            )
            return repo.list_consumers(conn, record.id, offset, limit)

    def add_consumer(self, caller: Caller, container_id: str, name: str, url: str) -> ContainerView:
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_consumers:post", "Container consumer creation"
            )
            self._quotas.check(conn, caller.project_id, "consumers", repo.count_consumers)
            repo.add_consumer(conn, record.id, caller.project_id, name, url, self._clock.now())
            return self._view(conn, record)

    def remove_consumer(self, caller: Caller, container_id: str, name: str, url: str) -> ContainerView:
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_consumers:delete", "Container consumer deletion"
            )
            registered_by = repo.consumer_project(conn, record.id, name, url)
            if registered_by is None:
                raise NotFound("Consumer not found.")
            access.may_remove_consumer(caller, record.project_id, registered_by)
            if not repo.remove_consumer(conn, record.id, name, url):
                raise NotFound("Consumer not found.")
            return self._view(conn, record)
