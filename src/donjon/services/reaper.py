"""The expiry reaper's pass: expired secrets (leaving a tombstone; an external store's object first),
versions past their grace period, expired wrap tokens and old tombstones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from donjon.errors import Unavailable
from donjon.services.lifecycle import LifecycleService
from donjon.storage import reaper as reaper_repo
from donjon.storage import tombstones
from donjon.storage.records import SecretRecord


@dataclass
class ReapReport:
    expired: int = 0
    versions: int = 0
    wraps: int = 0
    tombstones: int = 0
    # External stores that could not destroy an expired secret's object during the pass: their expired
    # secrets stay (already 404 through the API) for a later pass, and the rest is reaped meanwhile.
    unavailable_stores: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.expired + self.versions + self.wraps + self.tombstones


class Reaper(LifecycleService):
    """One pass at a time (donjon.workers.reaper.ExpiryReaper runs them in a thread)."""

    def _discard(self, record: SecretRecord, down: set[str]) -> bool:
        """Destroy an expiring secret's external object first; False (row kept) if its store is down."""
        assert record.store is not None
        if record.store in down:
            return False
        try:
            self._payloads.discard(record)
        except Unavailable:
            # One store's outage must not hold back the reaping of everything else: skip its secrets this pass.
            down.add(record.store)
            return False
        return True

    def reap_once(self, now: datetime | None = None) -> ReapReport:
        """One pass: expired secrets, versions past grace, expired wrap tokens, old tombstones."""
        now = now or self._clock.now()
        report = ReapReport()
        batch = self._config.reap_batch_size
        skip_locked = self._db.dialect != "sqlite"
        cutoff = now - timedelta(seconds=self._config.reap_delay_seconds)
        down = report.unavailable_stores
        while True:
            with self._db.write() as conn:
                claimed = reaper_repo.claim_expired(conn, cutoff, batch, skip_locked=skip_locked, skip_stores=down)
                for record in claimed:
                    if record.store is not None and not self._discard(record, down):
                        continue
                    report.expired += tombstones.remove_secret(conn, record, reason=tombstones.EXPIRED, now=now)
            if len(claimed) < batch:
                break
        while True:
            with self._db.write() as conn:
                done = reaper_repo.reap_versions(conn, now, batch, skip_locked=skip_locked)
            report.versions += done
            if done < batch:
                break
        with self._db.write() as conn:
            report.wraps += reaper_repo.reap_wraps(conn, now)
        if self._config.tombstone_retention_seconds >= 0:
            with self._db.write() as conn:
                report.tombstones += reaper_repo.reap_tombstones(
                    conn, now - timedelta(seconds=self._config.tombstone_retention_seconds)
                )
        return report
