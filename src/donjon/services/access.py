"""Who may touch a secret or container: load it by id, build the policy target from the stored row and
its ACL, and decide. A caller that may not see the resource at all gets 404, exactly as for a missing one
(no existence oracle); 403 is only for callers who may know it exists (same project, or in its ACL).

The 404 also takes the same time either way. For an id that does not exist, the same policy decision is
made on a stand-in target (its result unused), so another project's id is not told apart from an unknown
one by the policy evaluation it costs (it was 65-106 µs slower). Both are decided without the decision
cache: its hits and misses depend on which projects' resources the caller asked about before, so a cached
decision would still tell a first look at another project's secret from a look at nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.errors import Forbidden, NotFound
from donjon.policy import Policy, Target
from donjon.services.validation import is_canonical_uuid4
from donjon.storage import access as repo
from donjon.storage.containers import ContainerRecord
from donjon.storage.records import SecretRecord
from donjon.timeutil import utcnow


def denied(operation: str) -> Forbidden:
    return Forbidden(f"{operation} attempt not allowed - please review your user/project privileges")


def secret_for(
    conn: Connection,
    policy: Policy,
    caller: Caller,
    secret_id: str,
    rule: str,
    operation: str,
    *,
    with_payload: bool = False,
) -> SecretRecord:
    if not is_canonical_uuid4(secret_id):
        raise NotFound("Not Found. Provided secret id is invalid.")
    found = repo.secret_with_access(conn, secret_id, caller.user_id, utcnow(), with_payload=with_payload)
    record, facts = found if found is not None else (_absent_secret(secret_id), _ABSENT)
    target = Target("secret", record.project_id, record.creator_id, facts.project_access, facts.listed)
    # Another project's secret that the caller is not listed on, and an unknown id, are decided alike.
    foreign = found is None or (record.project_id != caller.project_id and not facts.listed)
    allowed = policy.allowed(rule, caller, target, cached=not foreign)
    if found is not None and allowed:
        return record
    if foreign:
        raise NotFound("Secret not found.")
    raise denied(operation)


def container_for(
    conn: Connection, policy: Policy, caller: Caller, container_id: str, rule: str, operation: str
) -> ContainerRecord:
    if not is_canonical_uuid4(container_id):
        raise NotFound("Not Found. Provided container id is invalid.")
    found = repo.container_with_access(conn, container_id, caller.user_id)
    record, facts = found if found is not None else (_absent_container(container_id), _ABSENT)
    target = Target("container", record.project_id, record.creator_id, facts.project_access, facts.listed)
    # Another project's container that the caller is not listed on, and an unknown id, are decided alike.
    foreign = found is None or (record.project_id != caller.project_id and not facts.listed)
    allowed = policy.allowed(rule, caller, target, cached=not foreign)
    if found is not None and allowed:
        return record
    if foreign:
        raise NotFound("Secrets container not found.")
    raise denied(operation)


# Stand-ins for an id that does not exist: never returned, only decided on (the decision is discarded).
_ABSENT = repo.AccessFacts(project_access=True, listed=False)
_EPOCH = datetime(1970, 1, 1)


def _absent_secret(secret_id: str) -> SecretRecord:
    return SecretRecord(secret_id, "", None, "opaque", None, None, None, secret_id, None, _EPOCH, _EPOCH)


def _absent_container(container_id: str) -> ContainerRecord:
    return ContainerRecord(container_id, "", None, "generic", container_id, _EPOCH, _EPOCH)
