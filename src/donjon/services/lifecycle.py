"""What the lifecycle features (versions, wraps, the reaper) are built on: payloads kept through the project
keys and the stores, the lifecycle settings, the database and the clock, gathered once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from donjon.config import LifecycleConfig
from donjon.services.payload_store import PayloadStore
from donjon.services.project_keys import ProjectKeys
from donjon.services.stores import StoreRegistry
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class LifecycleDeps:
    db: Database
    keys: ProjectKeys
    config: LifecycleConfig
    stores: StoreRegistry | None = None
    clock: Clock = SYSTEM_CLOCK


class LifecycleService:
    def __init__(self, deps: LifecycleDeps) -> None:
        self._db = deps.db
        self._payloads = PayloadStore(deps.keys, deps.stores)
        self._config = deps.config
        self._clock = deps.clock
