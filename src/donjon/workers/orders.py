"""The order worker: a thread in each server process that claims queued orders and processes them.

Orders posted to this process wake it at once; orders posted to other nodes are found by polling. Each
claim is a lease in the database: a worker that dies mid-order loses nothing, another one re-claims the
order when the lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from donjon.config import OrderConfig
from donjon.observability import metrics
from donjon.services.orders import ClaimLost, OrderProcessor
from donjon.storage import orders as repo
from donjon.storage.database import Database
from donjon.timeutil import utcnow

log = logging.getLogger("donjon.workers.orders")


class OrderWorker:
    def __init__(self, db: Database, processor: OrderProcessor, config: OrderConfig) -> None:
        self._db = db
        self._processor = processor
        self._config = config
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="donjon-order-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a database outage
                log.error("order worker: %s while claiming an order", type(exc).__name__)
                worked = False
            if not worked:
                self._wake.wait(self._config.poll_seconds)
                self._wake.clear()

    def run_once(self) -> bool:
        """Claim and process one order; False when none was waiting."""
        with self._db.write() as conn:
            order = repo.claim_next(
                conn,
                worker=self.name,
                now=utcnow(),
                lease=timedelta(seconds=self._config.lease_seconds),
                skip_locked=self._db.dialect != "sqlite",
            )
        if order is None:
            return False
        metrics.ORDERS_CLAIMED.inc()
        try:
            self._processor.process(order, self.name)
        except ClaimLost:
            log.warning("order %s was taken over by another worker", order.id)
        except Exception as exc:  # noqa: BLE001 - recorded on the order, never raised to a client
            metrics.ORDER_ATTEMPT_ERRORS.inc()
            attempts = self._attempts(order.id)
            log.error("order %s: %s (attempt %d)", order.id, type(exc).__name__, attempts)
            if attempts >= self._config.max_attempts:
                self._processor.fail(order, self.name)
            else:
                self._release(order.id)
        return True

    def _attempts(self, order_id: str) -> int:
        with self._db.read() as conn:
            return repo.attempts(conn, order_id)

    def _release(self, order_id: str) -> None:
        """Let the order be claimed again soon (by any worker) after an unexpected failure."""
        with self._db.write() as conn:
            repo.release(conn, order_id, worker=self.name, until=utcnow() + timedelta(seconds=1))
