"""Containers (spec §5): named groups of secret references (generic, rsa, certificate) and their consumers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from donjon.auth import Caller
from donjon.errors import Conflict, InvalidInput, NotFound
from donjon.policy import Policy
from donjon.services import access
from donjon.services.quotas import Quotas
from donjon.services.validation import has_nul, is_canonical_uuid4, optional_string, schema_error
from donjon.storage import containers as repo
from donjon.storage import secrets as secret_repo
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock

TYPES = ("generic", "rsa", "certificate")
_ALLOWED_NAMES = {
    "rsa": {"public_key", "private_key", "private_key_passphrase"},
    "certificate": {"certificate", "private_key", "private_key_passphrase", "intermediates"},
}
_REQUIRED_NAMES = {"rsa": {"public_key", "private_key"}, "certificate": {"certificate"}}


@dataclass(frozen=True)
class NewContainer:
    name: str | None
    type: str
    refs: list[repo.ContainerSecret]


@dataclass(frozen=True)
class ContainerView:
    container: repo.ContainerRecord
    secrets: list[repo.ContainerSecret]
    consumers: list[repo.ContainerConsumer]


def secret_id_of(ref: str, base_url: str) -> str:
    """The id at the end of a secret ref, which must point at this server (spec §5.2)."""
    if not ref.startswith(f"{base_url}/"):
        raise InvalidInput(f"Provided field value is not supported: secret_ref {ref!r} is not a ref of this server")
    return ref.rstrip("/").rsplit("/", 1)[-1]


def _ref(item: Any, base_url: str) -> repo.ContainerSecret:
    if not isinstance(item, dict):
        raise schema_error("Container", "secret_refs items must be objects", "secret_refs")
    ref = item.get("secret_ref")
    if not isinstance(ref, str) or not ref.strip():
        raise schema_error("Container", "'secret_ref' is a required property", "secret_ref")
    name = optional_string(item, "name", "Container", nullable=True)
    return repo.ContainerSecret(name, secret_id_of(ref.strip(), base_url))


def parse_container(body: Any, base_url: str) -> NewContainer:
    if not isinstance(body, dict):
        raise schema_error("Container", "the body is not a JSON object")
    type_ = body.get("type")
    if type_ not in TYPES:
        raise schema_error("Container", f"{type_!r} is not one of {list(TYPES)}", "type")
    name = optional_string(body, "name", "Container", nullable=True)
    raw = body.get("secret_refs", [])
    if not isinstance(raw, list):
        raise schema_error("Container", "'secret_refs' must be a list", "secret_refs")
    refs = [_ref(item, base_url) for item in raw]
    names = [r.name or "" for r in refs]
    if len(set(names)) != len(names):
        raise InvalidInput("Duplicate reference names are not allowed.")
    if len({r.secret_id for r in refs}) != len(refs):
        raise InvalidInput("Duplicate secret ids are not allowed.")
    if type_ in _ALLOWED_NAMES:
        unknown = set(names) - _ALLOWED_NAMES[type_]
        missing = _REQUIRED_NAMES[type_] - set(names)
        if unknown or missing:
            raise InvalidInput(
                f"Provided object does not match schema 'Container': a {type_} container takes the secret names "
                f"{sorted(_ALLOWED_NAMES[type_])} and requires {sorted(_REQUIRED_NAMES[type_])}"
            )
    return NewContainer(name, type_, refs)


class ContainerService:
    def __init__(self, db: Database, policy: Policy, quotas: Quotas, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self._clock = clock
        self._policy = policy
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
                if not is_canonical_uuid4(ref.secret_id) or not secret_repo.get_secret(
                    conn, caller.project_id, ref.secret_id, now
                ):
                    raise NotFound(f"Secret provided for '{ref.name or ''}' doesn't exist.")
            self._quotas.check(conn, caller.project_id, "containers", repo.count_containers)
            repo.insert_container(conn, record, new.refs)
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

    def add_secret(self, caller: Caller, container_id: str, ref: repo.ContainerSecret) -> None:
        now = self._clock.now()
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_secret:post", "Container Secret creation"
            )
            if record.type != "generic":
                raise InvalidInput("Only 'generic' containers can be modified.")
            if not is_canonical_uuid4(ref.secret_id) or not secret_repo.get_secret(
                conn, caller.project_id, ref.secret_id, now
            ):
                raise NotFound("Secret provided doesn't exist.")
            if not repo.add_secret(conn, record.id, ref, now):
                raise Conflict("Secret already exists in the container.")

    def remove_secret(self, caller: Caller, container_id: str, ref: repo.ContainerSecret) -> None:
        now = self._clock.now()
        with self._db.write() as conn:
            record = access.container_for(
                conn, self._policy, caller, container_id, "container_secret:delete", "Container Secret deletion"
            )
            if not is_canonical_uuid4(ref.secret_id) or not secret_repo.get_secret(
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


def consumer_fields(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise schema_error("Container Consumer", "the body is not a JSON object")
    name, url = body.get("name"), body.get("URL")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 36:
        raise schema_error("Container Consumer", "'name' must be 1 to 36 characters", "name")
    if not isinstance(url, str) or not 1 <= len(url.strip()) <= 255:
        raise schema_error("Container Consumer", "'URL' must be 1 to 255 characters", "URL")
    for key, value in (("name", name), ("URL", url)):
        if has_nul(value):
            raise schema_error("Container Consumer", f"'{key}' must not contain NUL characters", key)
    return name.strip(), url.strip()


def container_secret_ref(body: Any, base_url: str) -> repo.ContainerSecret:
    if not isinstance(body, dict):
        raise schema_error("Container Secret", "the body is not a JSON object")
    return _ref(body, base_url)
