"""Read ACLs of secrets and containers (spec §7): users of any project who may read, and whether the rest
of the owning project may (``project-access``)."""

from __future__ import annotations

from typing import Any

from donjon.auth import Caller
from donjon.services import access
from donjon.services.base import Service
from donjon.services.commands import AclChange
from donjon.storage import acls as repo
from donjon.timeutil import isoformat


class AclService(Service):
    def _entity(self, conn: Any, caller: Caller, kind: str, entity_id: str, rule: str, operation: str) -> str:
        if kind == "secret":
            return access.secret_for(
                conn, self._policy, caller, entity_id, f"secret_acls:{rule}", operation, now=self._clock.now()
            ).id
        return access.container_for(conn, self._policy, caller, entity_id, f"container_acls:{rule}", operation).id

    @staticmethod
    def _tables(kind: str) -> Any:
        return repo.SECRET if kind == "secret" else repo.CONTAINER

    def get(self, caller: Caller, kind: str, entity_id: str) -> dict[str, Any]:
        with self._db.read() as conn:
            eid = self._entity(conn, caller, kind, entity_id, "get", f"{kind.capitalize()} ACL retrieval")
            acl = repo.get(conn, self._tables(kind), eid)
        if acl is None:
            return {"read": {"project-access": True}}
        return {
            "read": {
                "project-access": acl.project_access,
                "users": acl.users,
                "created": isoformat(acl.created_at),
                "updated": isoformat(acl.updated_at),
            }
        }

    def set(self, caller: Caller, kind: str, entity_id: str, change: AclChange, *, replace: bool) -> None:
        """PUT replaces (omitted fields get their defaults); PATCH merges (omitted fields stay)."""
        with self._db.write() as conn:
            eid = self._entity(conn, caller, kind, entity_id, "put_patch", f"{kind.capitalize()} ACL update")
            if replace:
                project_access = True if change.project_access is None else change.project_access
                users = change.users if change.users is not None else []
                repo.put(
                    conn, self._tables(kind), eid, project_access=project_access, users=users, now=self._clock.now()
                )
            else:
                repo.put(
                    conn,
                    self._tables(kind),
                    eid,
                    project_access=change.project_access,
                    users=change.users,
                    now=self._clock.now(),
                )

    def delete(self, caller: Caller, kind: str, entity_id: str) -> None:
        with self._db.write() as conn:
            eid = self._entity(conn, caller, kind, entity_id, "delete", f"{kind.capitalize()} ACL deletion")
            repo.remove(conn, self._tables(kind), eid)
