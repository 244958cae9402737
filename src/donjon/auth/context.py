"""The authenticated caller, as the services see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    project_id: str
    user_id: str | None = None
    roles: tuple[str, ...] = ()
