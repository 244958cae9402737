"""Project KEKs: created on a project's first secret, stored wrapped by the keystore, cached unwrapped.

A service over storage (the wrapped rows, donjon.storage.keks), the keystore (wrap/unwrap) and crypto (a
fresh KEK): donjon.crypto stays pure and never sees a table.

The cache is per worker process, bounded in size (``max_projects`` keys) and by a TTL, so the keystore (an
HSM, a KMIP server) is asked for an unwrap once per project per TTL rather than once per request, and a
project's key bytes leave memory once their TTL is over (donjon.cache drops expired entries on each access).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from donjon.blocking import may_block
from donjon.cache import ExpiringCache
from donjon.crypto.envelope import kek_context, new_kek
from donjon.errors import Unavailable
from donjon.keystores import Keystore, WrappedKey
from donjon.observability import metrics
from donjon.storage import keks
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock

R = TypeVar("R")


# Bound once: every payload read counts a hit, and looking a child up by its label costs more than counting.
_KEK_HIT, _KEK_MISS = metrics.KEK_CACHE.labels("hit"), metrics.KEK_CACHE.labels("miss")


# How many times a write sealed under a KEK that a rotation retired before it committed is tried in all.
RETIRED_ATTEMPTS = 4


class KekRetired(Unavailable):
    """A KEK rotation retired the KEK a payload was sealed under before the payload's row was written.

    Raised inside that write's transaction (so nothing of it is kept); ``ProjectKeys.retry_if_retired`` seals again
    under the new active KEK. Only a second rotation within the same request reaches the client, as a 503.
    """

    def __init__(self) -> None:
        super().__init__("The project's encryption key was rotated during the request; please retry it.")


class _Held(threading.local):
    value: tuple[str, str] | None = None


@dataclass(frozen=True)
class Kek:
    id: str
    key: bytes = field(repr=False)


class ProjectKeys:
    def __init__(
        self,
        db: Database,
        keystore: Keystore,
        cache_seconds: float,
        *,
        max_projects: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._db = db
        self._clock = clock
        self._keystore = keystore
        self.cache_seconds = cache_seconds
        self.max_projects = max_projects
        # kek id -> unwrapped key; a project has one active KEK, and more only for a while after a rotation.
        self._keys: ExpiringCache[str, bytes] = ExpiringCache(
            maxsize=max_projects, ttl=cache_seconds, timer=clock.monotonic
        )
        # project id -> its active kek id, trusted for the same TTL (a rotate-kek settles within it).
        self._active: ExpiringCache[str, str] = ExpiringCache(
            maxsize=max_projects, ttl=cache_seconds, timer=clock.monotonic
        )
        # This thread's last (project, KEK) checked by ``hold``: what ``retry_if_retired`` verifies on a failure.
        self._held = _Held()

    def active(self, project_id: str) -> Kek:
        """The KEK new payloads of this project are sealed with; created on first use."""
        kek_id = self._active.get(project_id)
        if kek_id is not None:
            key = self._cached(kek_id)
            if key is not None:
                return Kek(kek_id, key)
        may_block("a keystore unwrap")
        with self._db.read() as conn:
            found = keks.get_active(conn, project_id)
        if found is None:
            found = self._create(project_id)
        kek_id, wrapped = found
        key = self._remember(kek_id, self._keystore.unwrap(wrapped, kek_context(kek_id=kek_id, project_id=project_id)))
        self._active.put(project_id, kek_id)
        return Kek(kek_id, key)

    def get(self, project_id: str, kek_id: str) -> bytes:
        """The KEK that sealed an existing payload."""
        key = self._cached(kek_id)
        if key is not None:
            return key
        may_block("a keystore unwrap")
        with self._db.read() as conn:
            wrapped = keks.get_wrapped(conn, project_id, kek_id)
        if wrapped is None:
            raise LookupError("KEK row missing")
        return self._remember(kek_id, self._keystore.unwrap(wrapped, kek_context(kek_id=kek_id, project_id=project_id)))

    def hold(self, conn: Connection, project_id: str, kek_id: str) -> None:
        """First in the write transaction storing a payload sealed under ``kek_id``: raise KekRetired (and forget
        the KEK) if a rotation retired it already.

        Sealing happens before the transaction (a keystore unwrap must not hold database locks), with the KEK
        this process has cached as active; a rotation may retire that KEK in between (its settle wait covers
        the cache TTL, not a request still in flight, nor a node whose cache outlives the wait). The check
        takes no row lock: the insert's foreign key already share-locks the KEK row until commit (PostgreSQL,
        InnoDB), so a retirement either waits and keeps the KEK, or committed in the instant since this check
        and fails the insert, which ``retry_if_retired`` recognises. An explicit lock here cost PostgreSQL
        ~4 ms a create (measured). SQLite's writers are serialized: the check is exact.
        """
        self._held.value = (project_id, kek_id)
        if keks.exists(conn, project_id, kek_id):
            return
        self._forget(project_id, kek_id)
        raise KekRetired

    def retry_if_retired(self, attempt: Callable[[], R]) -> R:
        """Run ``attempt``, which seals under ``active()`` and writes in a transaction that calls ``hold``; if
        a rotation retired that KEK meanwhile, run it again: it seals under the new active KEK. Rotations back
        to back (``rotate-kek`` with no settle wait) can retire that one too before it commits, so a few
        attempts, not one more."""
        for _ in range(RETIRED_ATTEMPTS - 1):
            self._held.value = None
            try:
                return attempt()
            except KekRetired:
                continue
            except IntegrityError:
                # The insert's foreign key: a retirement committed between hold's check and the insert.
                held = self._held.value
                if held is None:
                    raise
                with self._db.read() as conn:
                    if keks.exists(conn, *held):
                        raise  # another integrity error
                self._forget(*held)
        self._held.value = None
        return attempt()

    def _forget(self, project_id: str, kek_id: str) -> None:
        self._active.pop(project_id)
        self._keys.pop(kek_id)

    def forget(self) -> None:
        self._keys.clear()
        self._active.clear()

    def expire(self) -> None:
        """Drop the keys past their TTL now: the order worker's loop calls it, so an idle process lets go too."""
        self._keys.expire()
        self._active.expire()

    def time_left(self, kek_id: str) -> float:
        """Seconds this process keeps the unwrapped KEK ``kek_id`` still (0: not cached): what a cache of
        values opened under it (transit's unsealed rings) bounds its own entries by."""
        return self._keys.time_left(kek_id)

    def cached_count(self) -> int:
        """How many unwrapped KEKs this process holds now."""
        return len(self._keys)

    def _create(self, project_id: str) -> tuple[str, WrappedKey]:
        kek_id = str(uuid.uuid4())
        wrapped = self._keystore.wrap(new_kek(), kek_context(kek_id=kek_id, project_id=project_id))
        try:
            with self._db.write() as conn:
                keks.create_active(conn, kek_id=kek_id, project_id=project_id, wrapped=wrapped, now=self._clock.now())
            return kek_id, wrapped
        except IntegrityError:
            # Another request or node created the project's KEK first: use theirs.
            with self._db.read() as conn:
                found = keks.get_active(conn, project_id)
            if found is None:
                raise
            return found

    def _cached(self, kek_id: str) -> bytes | None:
        key = self._keys.get(kek_id)
        if key is not None:
            _KEK_HIT.inc()
        return key

    def _remember(self, kek_id: str, key: bytes) -> bytes:
        _KEK_MISS.inc()  # a KEK that had to be unwrapped: first use, or its TTL ran out
        self._keys.put(kek_id, key)
        return key
