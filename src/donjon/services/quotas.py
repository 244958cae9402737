"""Quota enforcement (spec §8): negative = unlimited, 0 = disabled, N = at most N live resources.

The check and the insert happen in one transaction that first locks the project (``storage.quotas``), so
two concurrent creates at the edge cannot both pass — Barbican counts then inserts without a lock.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from donjon.config import QuotaConfig
from donjon.errors import Forbidden
from donjon.storage import quotas as repo

Counter = Callable[[Connection, str], int]


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
