"""Project KEKs: created on a project's first secret, stored wrapped by the keystore, cached unwrapped.

The cache is per worker process and bounded by a TTL, so the keystore (an HSM, a KMIP server) is asked for
an unwrap once per project per TTL rather than once per request.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from donjon.crypto.envelope import kek_context, new_kek
from donjon.keystores import Keystore, WrappedKey
from donjon.observability import metrics
from donjon.storage import keks
from donjon.storage.database import Database
from donjon.timeutil import utcnow


@dataclass(frozen=True)
class Kek:
    id: str
    key: bytes = field(repr=False)


class ProjectKeys:
    def __init__(self, db: Database, keystore: Keystore, cache_seconds: float) -> None:
        self._db = db
        self._keystore = keystore
        self._ttl = cache_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[bytes, float]] = {}  # kek id -> (key, expiry on the monotonic clock)
        self._active: dict[str, str] = {}  # project id -> active kek id

    def active(self, project_id: str) -> Kek:
        """The KEK new payloads of this project are sealed with; created on first use."""
        kek_id = self._active.get(project_id)
        if kek_id is not None:
            key = self._cached(kek_id)
            if key is not None:
                return Kek(kek_id, key)
        with self._db.read() as conn:
            found = keks.get_active(conn, project_id)
        if found is None:
            found = self._create(project_id)
        kek_id, wrapped = found
        key = self._remember(kek_id, self._keystore.unwrap(wrapped, kek_context(kek_id=kek_id, project_id=project_id)))
        self._active[project_id] = kek_id
        return Kek(kek_id, key)

    def get(self, project_id: str, kek_id: str) -> bytes:
        """The KEK that sealed an existing payload."""
        key = self._cached(kek_id)
        if key is not None:
            return key
        with self._db.read() as conn:
            wrapped = keks.get_wrapped(conn, project_id, kek_id)
        if wrapped is None:
            raise LookupError("KEK row missing")
        return self._remember(kek_id, self._keystore.unwrap(wrapped, kek_context(kek_id=kek_id, project_id=project_id)))

    def forget(self) -> None:
        with self._lock:
            self._keys.clear()
            self._active.clear()

    def _create(self, project_id: str) -> tuple[str, WrappedKey]:
        kek_id = str(uuid.uuid4())
        wrapped = self._keystore.wrap(new_kek(), kek_context(kek_id=kek_id, project_id=project_id))
        try:
            with self._db.write() as conn:
                keks.create_active(conn, kek_id=kek_id, project_id=project_id, wrapped=wrapped, now=utcnow())
            return kek_id, wrapped
        except IntegrityError:
            # Another request or node created the project's KEK first: use theirs.
            with self._db.read() as conn:
                found = keks.get_active(conn, project_id)
            if found is None:
                raise
            return found

    def _cached(self, kek_id: str) -> bytes | None:
        entry = self._keys.get(kek_id)
        if entry is None or entry[1] < time.monotonic():
            return None
        metrics.KEK_CACHE.labels("hit").inc()
        return entry[0]

    def _remember(self, kek_id: str, key: bytes) -> bytes:
        metrics.KEK_CACHE.labels("miss").inc()  # a KEK that had to be unwrapped: first use, or its TTL ran out
        with self._lock:
            self._keys[kek_id] = (key, time.monotonic() + self._ttl)
        return key
