"""Quota enforcement (spec §8): negative = unlimited, 0 = disabled, N = at most N live resources.

The check and the insert happen in one transaction that first locks the project (``storage.quotas``), so
two concurrent creates at the edge cannot both pass — Barbican counts then inserts without a lock.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.config import QuotaConfig
from donjon.errors import Forbidden, InvalidInput, NotFound
from donjon.policy import Policy
from donjon.services.base import Service
from donjon.services.commands import QuotaChange
from donjon.storage import quotas as repo
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock

Counter = Callable[[Connection, str], int]
# The resources a quota limits.
RESOURCES = repo.RESOURCES


class Quotas:
    def __init__(self, defaults: QuotaConfig) -> None:
        self._defaults = defaults.model_dump()

    def effective(self, conn: Connection, project_id: str) -> dict[str, int]:
        stored = repo.get(conn, project_id)
        values = stored.values if stored else {}
        return {r: v if (v := values.get(r)) is not None else int(self._defaults[r]) for r in repo.RESOURCES}

    def defaults(self) -> dict[str, int]:
        return {r: int(self._defaults[r]) for r in repo.RESOURCES}

    def check(self, conn: Connection, project_id: str, resource: str, *counters: Counter) -> None:
        """Raise Forbidden if creating one more ``resource`` would exceed the project's quota.

        Call inside the write transaction that creates it. Each counter counts one kind of row that the
        quota limits separately (secret and container consumers share the ``consumers`` quota value).
        """
        stored = repo.get(conn, project_id)
        value = stored.values.get(resource) if stored else None
        quota = value if value is not None else int(self._defaults[resource])
        if quota < 0:
            return
        if quota > 0:
            repo.lock_project(conn, project_id)
            if all(count(conn, project_id) < quota for count in counters):
                return
        raise Forbidden("Creation not allowed because a quota has been reached.")


class QuotaAdmin(Service):
    """``/v1/quotas`` and ``/v1/project-quotas``: reading the caller's quotas, and an admin's overrides."""

    def __init__(self, db: Database, policy: Policy, quotas: Quotas, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(db, policy, clock=clock)
        self._quotas = quotas

    def effective(self, caller: Caller) -> dict[str, int]:
        self._policy.enforce("quotas:get", caller, operation="Quotas retrieval")
        with self._db.read() as conn:
            return self._quotas.effective(conn, caller.project_id)

    def list_overrides(self, caller: Caller, offset: int, limit: int) -> tuple[list[repo.ProjectQuotas], int]:
        self._policy.enforce("project_quotas:get", caller, operation="Project Quotas retrieval")
        with self._db.read() as conn:
            return repo.list_all(conn, offset, limit)

    def get_override(self, caller: Caller, project_id: str) -> repo.ProjectQuotas:
        self._policy.enforce("project_quotas:get", caller, operation="Project Quotas retrieval")
        if not _storable(project_id):
            raise NotFound("Project quotas not found.")  # no such project id can have been stored
        with self._db.read() as conn:
            found = repo.get(conn, project_id)
        if found is None:
            raise NotFound("Project quotas not found.")
        return found

    def set_override(self, caller: Caller, project_id: str, change: QuotaChange) -> None:
        self._policy.enforce("project_quotas:put", caller, operation="Project Quotas update")
        if not _storable(project_id):
            raise InvalidInput("Invalid project id: at most 255 characters, and no NUL characters.")
        with self._db.write() as conn:
            repo.put(conn, project_id, change.values, self._clock.now())

    def delete_override(self, caller: Caller, project_id: str) -> None:
        self._policy.enforce("project_quotas:delete", caller, operation="Project Quotas deletion")
        if not _storable(project_id):
            raise NotFound("Project quotas not found.")
        with self._db.write() as conn:
            if not repo.remove(conn, project_id):
                raise NotFound("Project quotas not found.")


def _storable(project_id: str) -> bool:
    """Whether the project id fits the project_id columns (255 characters, no NUL)."""
    return len(project_id) <= 255 and "\x00" not in project_id
