"""Who may touch a secret or container: load it by id, build the policy target from the stored row and
its ACL, and decide. A caller that may not see the resource at all gets 404, exactly as for a missing one
(no existence oracle); 403 is only for callers who may know it exists (same project, or in its ACL).
"""

from __future__ import annotations

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
    if found is None:
        raise NotFound("Secret not found.")
    record, facts = found
    target = Target("secret", record.project_id, record.creator_id, facts.project_access, facts.listed)
    if policy.allowed(rule, caller, target):
        return record
    if record.project_id != caller.project_id and not facts.listed:
        raise NotFound("Secret not found.")
    raise denied(operation)


def container_for(
    conn: Connection, policy: Policy, caller: Caller, container_id: str, rule: str, operation: str
) -> ContainerRecord:
    if not is_canonical_uuid4(container_id):
        raise NotFound("Not Found. Provided container id is invalid.")
    found = repo.container_with_access(conn, container_id, caller.user_id)
    if found is None:
        raise NotFound("Secrets container not found.")
    record, facts = found
    target = Target("container", record.project_id, record.creator_id, facts.project_access, facts.listed)
    if policy.allowed(rule, caller, target):
        return record
    if record.project_id != caller.project_id and not facts.listed:
        raise NotFound("Secrets container not found.")
    raise denied(operation)
