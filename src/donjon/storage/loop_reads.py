"""PostgreSQL reads on the event loop: psycopg's asyncio connection, driven from a greenlet.

A read over the network used to go to a worker thread (``donjon.blocking``): the hop there and back, and the
thread's fight with the loop for the GIL while it waited for the database, cost more than the query. Here the
read's own code, written for a blocking connection, runs in a greenlet on the loop
(``donjon.blocking.run_awaiting``); each statement's round trip suspends that greenlet while the loop serves
other requests, and resumes it when psycopg's socket has the answer. Nothing else changes for the read: the
same services, the same statements, the same errors. A step that would still block (a keystore unwrap, a
write, an external store) raises ``WouldBlock`` as on SQLite, and the whole call runs again in a worker thread.

Each event loop has its own engine (an asyncio connection belongs to the loop that waits on it; a server's
worker has one loop, tests may run several), kept until ``close``.

A read's connection is kept by its loop when the read is done, for the next read there (``read_connection``):
a checkout from the asyncio pool and its check-in (events, the reset's rollback, the pool's queue, each
through a greenlet switch) cost about a tenth of a read's CPU. Reads run in autocommit, so a connection a
read gave back holds no transaction. The loop reuses one only if it was given back less than a second ago
(``reuse_within``, the same span after which the pool pings a connection before handing it out); an older
one goes back to the pool, whose checkout pings it. A read whose database statement failed closes its
connection and lets the loop's kept ones go back to the pool too; so does an invalidation of any connection
of the loop's engine (a write that met a lost connection, say): after a database restart they are all cut.
Kept connections count as checked out (``donjon_db_connections_in_use``), at most ``pool_size`` of them, so
the pool's overflow always has room for the loop's group commits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from donjon.blocking import WouldBlock


def awaits_on_loop(url_driver: str) -> bool:
    """Whether a database driver can wait on the event loop (psycopg 3 can; PyMySQL cannot)."""
    return url_driver in ("psycopg", "psycopg_async")


@dataclass
class _LoopEngine:
    engine: AsyncEngine
    writer: Engine  # the same engine's face for write transactions (made once, not per batch)
    # Connections that reads on this loop gave back, with when, and the pool's generation then: the most recent
    # last.
    kept: list[tuple[Connection, float, int]] = field(default_factory=list)
    # Bumped each time the pool invalidates a connection (a statement met a lost one, on a read or a write of
    # this loop): SQLAlchemy then replaces every older pooled connection at its checkout, and the kept ones are
    # let go alike.
    generation: int = 0

    def invalidated(self, *_: object) -> None:
        self.generation += 1


class LoopEngines:
    """One asyncio engine per event loop, for the reads and the group commits made there."""

    def __init__(
        self, url: str, *, pool_size: int, configure: Callable[[Engine], None], reuse_within: float = 1.0
    ) -> None:
        self._url = url
        self._pool_size = pool_size
        self._configure = configure
        self._reuse_within = reuse_within
        self._engines: dict[asyncio.AbstractEventLoop, _LoopEngine] = {}
        self._lock = threading.Lock()

    def for_running_loop(self) -> Engine:
        """The running loop's engine (its blocking-style face, whose driver calls await inside a greenlet)."""
        return self._for_running_loop().engine.sync_engine

    def writer_for_running_loop(self) -> Engine:
        """The same engine for write transactions: READ COMMITTED, where reads run in autocommit."""
        return self._for_running_loop().writer

    @contextmanager
    def read_connection(self, connect: Callable[[Engine], Connection]) -> Iterator[Connection]:
        """A connection of the running loop's engine for one read, in the read's greenlet: one an earlier read
        on this loop gave back moments ago, else ``connect(engine)`` (a checkout). Kept for the next read
        afterwards, unless the read failed."""
        loop_engine = self._for_running_loop()
        kept = loop_engine.kept
        conn: Connection | None = None
        now = time.monotonic()
        while kept and conn is None:
            candidate, given_back, generation = kept.pop()
            if now - given_back < self._reuse_within and generation == loop_engine.generation:
                conn = candidate
            else:
                # Unused for a while (back to the pool, whose checkout pings it first), or kept from before the
                # pool was invalidated (replaced by the pool at its checkout).
                candidate.close()
        if conn is None:
            conn = connect(loop_engine.engine.sync_engine)
        try:
            yield conn
        except WouldBlock:
            self._keep(loop_engine, conn)  # raised before the step that would block: the connection is as it was
            raise
        except BaseException as exc:
            conn.close()  # whatever failed may have left something open: a fresh one for the next read
            if isinstance(exc, sa_exc.DBAPIError):
                self._release_kept(loop_engine)  # a database in trouble (a restart cuts every connection)
            raise
        self._keep(loop_engine, conn)

    def _keep(self, loop_engine: _LoopEngine, conn: Connection) -> None:
        if conn.invalidated or len(loop_engine.kept) >= self._pool_size:
            conn.close()
            return
        if conn.in_transaction():
            conn.rollback()  # the one a statement through Connection.execute began (autocommit: nothing to undo)
        loop_engine.kept.append((conn, time.monotonic(), loop_engine.generation))

    @staticmethod
    def _release_kept(loop_engine: _LoopEngine) -> None:
        kept, loop_engine.kept = loop_engine.kept, []
        for conn, _, _ in kept:
            conn.close()

    def _for_running_loop(self) -> _LoopEngine:
        loop = asyncio.get_running_loop()
        loop_engine = self._engines.get(loop)
        if loop_engine is None:
            with self._lock:
                loop_engine = self._engines.get(loop)
                if loop_engine is None:
                    # Under READ COMMITTED each statement takes its own snapshot: no transaction per read (as the
                    # thread's reads, see Database).
                    engine = create_async_engine(
                        self._url,
                        pool_size=self._pool_size,
                        max_overflow=self._pool_size,
                        pool_recycle=3600,
                        isolation_level="AUTOCOMMIT",
                    )
                    self._configure(engine.sync_engine)
                    writer = engine.sync_engine.execution_options(isolation_level="READ COMMITTED")
                    loop_engine = self._engines[loop] = _LoopEngine(engine, writer)
                    event.listen(engine.sync_engine, "invalidate", loop_engine.invalidated)
        return loop_engine

    def close(self) -> None:
        """Close every loop's connections, the kept ones too. Closing one only ends its libpq connection, which
        needs no particular loop: a thread of its own runs the engines' disposal, so this works whether or not a
        loop runs here."""
        with self._lock:
            loop_engines, self._engines = list(self._engines.values()), {}
        if not loop_engines:
            return

        async def dispose_all() -> None:
            for loop_engine in loop_engines:
                await greenlet_spawn(self._release_kept, loop_engine)  # checked back in, then closed with the pool
                await loop_engine.engine.dispose()

        closer = threading.Thread(target=asyncio.run, args=(dispose_all(),), name="donjon-loop-reads-close")
        closer.start()
        closer.join()
