"""Who may touch a secret or container: load it by id, build the policy target from the stored row and
its ACL, and decide. A caller that may not see the resource at all gets 404, exactly as for a missing one
(no existence oracle); 403 is only for callers who may know it exists (same project, or in its ACL).

The 404 also takes the time either way: the look-up runs the same statement and builds the same values
whether the id exists or not (storage.access), and for an id that does not exist the policy decision is
made on a stand-in target (its result unused). What is left is the policy's decision cache: the first
decision on a given (caller, project, creator) evaluates oslo.policy (~0.1-0.3 ms), later ones are hits, for
another project's secret and for the stand-in alike. Deciding those without the cache would remove that
one-time difference at ~0.4 ms on every such request (measured; bench/README.md).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.errors import Forbidden, NotFound
from donjon.policy import Policy, Target
from donjon.services.base import Service
from donjon.storage import access as repo
from donjon.storage.containers import ContainerRecord
from donjon.storage.database import Database
from donjon.storage.records import SecretRecord
from donjon.storage.transit import MARKER_ALGORITHM as TRANSIT_MARKER

# What access decides on: a secret or a container row.
_Entity = TypeVar("_Entity", SecretRecord, ContainerRecord)

_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def is_canonical_uuid4(value: str) -> bool:
    """Whether ``value`` is an id donjon can have issued (a lower-case uuid4): any other is simply not found."""
    return bool(_UUID4.match(value))


def denied(operation: str) -> Forbidden:
    return Forbidden(f"{operation} attempt not allowed - please review your user/project privileges")


def _decide(
    found: tuple[_Entity, repo.AccessFacts] | None,
    absent: _Entity,
    kind: str,
    policy: Policy,
    caller: Caller,
    rule: str,
    operation: str,
    not_found: str,
) -> _Entity:
    """The found entity if policy allows ``rule``; else 404 (``not_found``) for a caller who may not know it
    exists, 403 for one who may. A missing id is decided on the stand-in ``absent`` too (same work either way)."""
    record, facts = found if found is not None else (absent, _ABSENT)
    target = Target(kind, record.project_id, record.creator_id, facts.project_access, facts.listed)
    allowed = policy.allowed(rule, caller, target)
    if found is not None and allowed:
        return record
    if found is None or (record.project_id != caller.project_id and not facts.listed):
        raise NotFound(not_found)
    raise denied(operation)


def decide_secret(
    found: tuple[SecretRecord, repo.AccessFacts] | None, policy: Policy, caller: Caller, rule: str, operation: str
) -> SecretRecord:
    """``secret_for``'s decision on a secret its caller found another way (a transit ring, by name)."""
    return _decide(found, _ABSENT_SECRET, "secret", policy, caller, rule, operation, "Secret not found.")


def secret_for(
    conn: Connection,
    policy: Policy,
    caller: Caller,
    secret_id: str,
    rule: str,
    operation: str,
    *,
    now: datetime,
    with_payload: bool = False,
) -> SecretRecord:
    """The secret if ``caller`` may act on it; an expired one (``now`` is past its expiration) is not found."""
    if not is_canonical_uuid4(secret_id):
        raise NotFound("Not Found. Provided secret id is invalid.")
    found = repo.secret_with_access(conn, secret_id, caller.user_id, now, with_payload=with_payload)
    return _decide(found, _ABSENT_SECRET, "secret", policy, caller, rule, operation, "Secret not found.")


def payload_exportable(record: SecretRecord, operation: str) -> None:
    """Refuse to serve or replace the payload of a transit key through the Barbican API.

    A transit key's payload is its key ring (services/transit.py): Vault never exports such a key, and a
    payload written through Barbican would replace every version of it. Raised after the policy decision,
    so a caller who may not see the secret still gets the 404 (or 403) a plain secret would give.
    """
    if record.algorithm == TRANSIT_MARKER:
        raise Forbidden(f"{operation} attempt not allowed - a transit key is used through /v1/transit, never exported")


def exportable_secret(
    db: Database, policy: Policy, caller: Caller, secret_id: str, rule: str, operation: str, *, now: datetime
) -> SecretRecord:
    """The secret an operation hands its payload on from or replaces: ``secret_for`` in a read transaction
    of its own, then ``payload_exportable`` (a transit key is refused)."""
    with db.read() as conn:
        record = secret_for(conn, policy, caller, secret_id, rule, operation, now=now)
    payload_exportable(record, operation)
    return record


def container_for(
    conn: Connection, policy: Policy, caller: Caller, container_id: str, rule: str, operation: str
) -> ContainerRecord:
    if not is_canonical_uuid4(container_id):
        raise NotFound("Not Found. Provided container id is invalid.")
    found = repo.container_with_access(conn, container_id, caller.user_id)
    return _decide(
        found, _ABSENT_CONTAINER, "container", policy, caller, rule, operation, "Secrets container not found."
    )


class AccessCheck(Service):
    """A policy decision alone, acting on nothing: what the request's own service call would decide first.

    The API asks it when a body is refused, so that a caller who may not act gets the 403/404 a valid body
    would get, never a validation message (api/guard.py). Read-only; the service call decides again."""

    def rule(self, caller: Caller, rule: str, operation: str) -> None:
        self._policy.enforce(rule, caller, operation=operation)

    def secret(self, caller: Caller, secret_id: str, rule: str, operation: str) -> None:
        with self._db.read() as conn:
            secret_for(conn, self._policy, caller, secret_id, rule, operation, now=self._clock.now())

    def container(self, caller: Caller, container_id: str, rule: str, operation: str) -> None:
        with self._db.read() as conn:
            container_for(conn, self._policy, caller, container_id, rule, operation)


def may_remove_consumer(caller: Caller, entity_project_id: str, consumer_project_id: str) -> None:
    """A consumer belongs to the project that registered it: that project, or the secret's or container's own
    project, may remove it; a user of another project who may register consumers (through the read ACL) may
    not remove theirs. Barbican's controllers/consumers.py, word for word."""
    if caller.project_id not in (consumer_project_id, entity_project_id):
        raise Forbidden("Not Allowed. Sorry, only the creator of a consumer can delete it.")


# The stand-in for an id that does not exist: never returned, only decided on (the decision is discarded).
# One per kind, so that its decision is cached like the one on another project's resource.
_ABSENT = repo.AccessFacts(project_access=True, listed=False)
_EPOCH = datetime(1970, 1, 1)
_ABSENT_SECRET = SecretRecord("", "", None, "opaque", None, None, None, None, None, _EPOCH, _EPOCH)
_ABSENT_CONTAINER = ContainerRecord("", "", None, "generic", None, _EPOCH, _EPOCH)
