"""The expiry reaper: a thread in each server process that deletes what has outlived its life.

Each pass claims its rows in the database (``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB; SQLite's
write lock serialises writers), and deletes them in the same transaction, so N nodes never process the same
row twice and a node that dies mid-pass leaves nothing half-done: no lease is needed.
"""

from __future__ import annotations

import logging
import threading

from donjon.config import LifecycleConfig
from donjon.observability import metrics
from donjon.services.reaper import Reaper, ReapReport

log = logging.getLogger("donjon.workers.reaper")


class ExpiryReaper:
    def __init__(self, service: Reaper, config: LifecycleConfig) -> None:
        self._service = service
        self._config = config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="donjon-expiry-reaper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the reaper must outlive a database outage
                log.error("expiry reaper: %s during a pass", type(exc).__name__)
            self._stop.wait(self._config.reap_interval_seconds)

    def run_once(self) -> ReapReport:
        try:
            report = self._service.reap_once()
        except Exception:
            metrics.REAPER_RUNS.labels("error").inc()
            raise
        metrics.REAPER_RUNS.labels("ok").inc()
        for kind in ("expired", "versions", "wraps", "tombstones"):
            if count := getattr(report, kind):
                metrics.REAPED.labels(kind).inc(count)
        for store in sorted(report.unavailable_stores):
            log.warning("expiry reaper: secret store %r unavailable; its expired secrets wait for a later pass", store)
        if report.total:
            log.info(
                "reaped %d expired secrets, %d old versions, %d wrap tokens, %d tombstones",
                report.expired,
                report.versions,
                report.wraps,
                report.tombstones,
            )
        return report
