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
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def awaits_on_loop(url_driver: str) -> bool:
    """Whether a database driver can wait on the event loop (psycopg 3 can; PyMySQL cannot)."""
    return url_driver in ("psycopg", "psycopg_async")


class LoopEngines:
    """One asyncio engine per event loop, for the reads and the group commits made there."""

    def __init__(self, url: str, *, pool_size: int, configure: Callable[[Engine], None]) -> None:
        self._url = url
        self._pool_size = pool_size
        self._configure = configure
        # Per loop: its engine, and the same engine's face for write transactions (made once, not per batch).
        self._engines: dict[asyncio.AbstractEventLoop, tuple[AsyncEngine, Engine]] = {}
        self._lock = threading.Lock()

    def for_running_loop(self) -> Engine:
        """The running loop's engine (its blocking-style face, whose driver calls await inside a greenlet)."""
        return self._for_running_loop()[0].sync_engine

    def writer_for_running_loop(self) -> Engine:
        """The same engine for write transactions: READ COMMITTED, where reads run in autocommit."""
        return self._for_running_loop()[1]

    def _for_running_loop(self) -> tuple[AsyncEngine, Engine]:
        loop = asyncio.get_running_loop()
        engines = self._engines.get(loop)
        if engines is None:
            with self._lock:
                engines = self._engines.get(loop)
                if engines is None:
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
                    engines = self._engines[loop] = (engine, writer)
        return engines

    def close(self) -> None:
        """Close every loop's connections. Closing one only ends its libpq connection, which needs no particular
        loop: a thread of its own runs the engines' disposal, so this works whether or not a loop runs here."""
        with self._lock:
            engines, self._engines = [engine for engine, _ in self._engines.values()], {}
        if not engines:
            return

        async def dispose_all() -> None:
            for engine in engines:
                await engine.dispose()

        closer = threading.Thread(target=asyncio.run, args=(dispose_all(),), name="donjon-loop-reads-close")
        closer.start()
        closer.join()
