"""The authenticated caller, as the services see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Who is calling. Frozen and hashable: policy decisions are cached per (rule, caller, target).

    ``project_id`` is the project the caller's token is scoped to. A Keystone system-scoped token has no
    project: ``project_id`` is empty and ``system_scope`` is ``"all"``, and only rules whose scope types
    include ``system`` can pass for it.
    """

    project_id: str
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    system_scope: str | None = None
