"""The order worker: a thread in each server process that claims queued orders and processes them.

Orders posted to this process wake it at once; orders posted to other nodes are found by polling. Each
claim is a lease in the database: a worker that dies mid-order loses nothing, another one re-claims the
order when the lease runs out.

A request that posted an order may wait for it (``wait_finished``): the worker claims that order first, still
through the database (so no order runs twice, whichever node holds it), and resolves the request's future
from its thread when the order is ACTIVE or ERROR. Barbican runs orders inside the request, and its clients
GET an order once expecting it done.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import timedelta

import anyio.to_thread

from donjon.config import OrderConfig
from donjon.observability import metrics
from donjon.services.orders import ClaimLost, OrderProcessor
from donjon.storage import orders as repo
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock

log = logging.getLogger("donjon.workers.orders")

# Orders this worker finished lately: a request that starts waiting just after its order finished returns at
# once instead of waiting for its bound.
_RECENT = 1024
# How often a request follows, in the database, an order that another node's worker holds.
_FOLLOW_SECONDS = 0.1


class OrderWorker:
    def __init__(
        self,
        db: Database,
        processor: OrderProcessor,
        config: OrderConfig,
        *,
        housekeeping: Callable[[], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._db = db
        self._clock = clock  # leases and the retry delay are database times
        self._processor = processor
        self._config = config
        # Called between polls: the server drops expired KEKs from memory here, so an idle process does too.
        self._housekeeping = housekeeping
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Requests waiting for an order, the orders to claim before the oldest, and the recently finished ones.
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]]] = {}
        self._waiting = 0
        self._wanted: deque[str] = deque()
        self._finished: OrderedDict[str, None] = OrderedDict()

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

    async def wait_finished(self, order_id: str, timeout: float) -> bool:
        """Wait, without holding a thread, until ``order_id`` is ACTIVE or ERROR; False past ``timeout``.

        This worker claims the order ahead of older ones, through the database as any other claim. If another
        node's worker has it already, the order is followed in the database until the bound. False at once
        when the worker is not running or ``max_waiting_answers`` requests already wait.
        """
        if timeout <= 0 or self._thread is None or not self._thread.is_alive():
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        future: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            if order_id in self._finished:
                return True
            if self._waiting >= self._config.max_waiting_answers:
                return False
            self._waiters.setdefault(order_id, []).append((loop, future))
            self._waiting += 1
            self._wanted.append(order_id)
        self._wake.set()
        try:
            if await asyncio.wait_for(future, timeout):
                return True
            # Claimed by another node (or already done there): its outcome is only in the database.
            while (left := deadline - loop.time()) > 0:
                if await anyio.to_thread.run_sync(self._is_final, order_id):
                    return True
                await asyncio.sleep(min(_FOLLOW_SECONDS, left))
            return False
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiters.get(order_id, [])
                if (loop, future) in waiters:
                    waiters.remove((loop, future))
                    if not waiters:
                        del self._waiters[order_id]
                self._waiting -= 1

    def _is_final(self, order_id: str) -> bool:
        with self._db.read() as conn:
            return repo.status(conn, order_id) in (repo.ACTIVE, repo.ERROR, None)

    def _finish(self, order_id: str) -> None:
        """Record that ``order_id`` reached ACTIVE or ERROR here, and resolve the requests waiting for it."""
        with self._lock:
            self._finished[order_id] = None
            if len(self._finished) > _RECENT:
                self._finished.popitem(last=False)
        self._resolve_waiters(order_id, True)

    def _resolve_waiters(self, order_id: str, here: bool) -> None:
        with self._lock:
            waiters = list(self._waiters.get(order_id, []))
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future, here)
            except RuntimeError:  # that request's event loop has closed: nobody is waiting any more
                pass

    def _next_wanted(self) -> str | None:
        with self._lock:
            while self._wanted:
                order_id = self._wanted.popleft()
                if order_id in self._waiters:
                    return order_id
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a database outage
                log.error("order worker: %s while claiming an order", type(exc).__name__)
                worked = False
            if self._housekeeping is not None:
                self._housekeeping()
            if not worked:
                self._wake.wait(self._config.poll_seconds)
                self._wake.clear()

    def run_once(self) -> bool:
        """Claim and process one order (one a request waits for first); False when none was waiting."""
        order = None
        wanted = self._next_wanted()
        if wanted is not None:
            order = self._claim(wanted)
            if order is None:  # another worker has it, or it is done: its waiters follow it in the database
                self._resolve_waiters(wanted, False)
        if order is None:
            order = self._claim(None)
        if order is None:
            return False
        metrics.ORDERS_CLAIMED.inc()
        try:
            self._processor.process(order, self.name)
            self._finish(order.id)
        except ClaimLost:
            log.warning("order %s was taken over by another worker", order.id)
        except Exception as exc:  # noqa: BLE001 - recorded on the order, never raised to a client
            metrics.ORDER_ATTEMPT_ERRORS.inc()
            attempts = self._attempts(order.id)
            log.error("order %s: %s (attempt %d)", order.id, type(exc).__name__, attempts)
            if attempts >= self._config.max_attempts:
                self._processor.fail(order, self.name)
                self._finish(order.id)
            else:
                self._release(order.id)
        return True

    def _claim(self, order_id: str | None) -> repo.OrderRecord | None:
        with self._db.write() as conn:
            return repo.claim_next(
                conn,
                worker=self.name,
                now=self._clock.now(),
                lease=timedelta(seconds=self._config.lease_seconds),
                skip_locked=self._db.dialect != "sqlite",
                order_id=order_id,
            )

    def _attempts(self, order_id: str) -> int:
        with self._db.read() as conn:
            return repo.attempts(conn, order_id)

    def _release(self, order_id: str) -> None:
        """Let the order be claimed again soon (by any worker) after an unexpected failure."""
        with self._db.write() as conn:
            repo.release(conn, order_id, worker=self.name, until=self._clock.now() + timedelta(seconds=1))


def _resolve(future: asyncio.Future[bool], here: bool) -> None:
    if not future.done():
        future.set_result(here)
