"""Engine set-up and transactions, with the per-backend settings that make writes durable and safe.

SQLite: WAL with synchronous=FULL, so an acknowledged write survives a power cut. SQLite allows one writer
at a time; rather than let concurrent writers fail with "database is locked" (Barbican's 500s) or spin in
SQLite's sleeping busy handler, every write transaction takes an exclusive lock on a file beside the
database, shared by the threads and the worker processes of this host. Readers never take it.

A database that cannot be reached (down, restarting, failing over, out of connections, locked past the busy
timeout) raises ``DatabaseUnavailable``, a 503 the caller may retry, instead of the driver's error. The pool
replaces dead connections (``_ping_after_idle``), so service resumes by itself when the database is back.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from donjon.blocking import WouldBlock, driver_awaits, may_block, on_loop
from donjon.errors import Unavailable
from donjon.observability import metrics
from donjon.storage.group_commit import GroupCommit
from donjon.storage.loop_reads import LoopEngines, awaits_on_loop

T = TypeVar("T")

# What "not now" looks like per driver, as opposed to a statement the database refuses (a bug: 500).
# SQLite's primary result codes: BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_UNAVAILABLE = {5, 6, 7, 10, 13, 14, 15}
# PostgreSQL SQLSTATE: connection exceptions (08), a server shutting down, crashed or starting (57P01-57P03),
# out of resources (53: too many connections...), and transactions to retry (40001, 40P01).
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P0", "40001", "40P01")
# MariaDB/MySQL error numbers: client-side connection failures (2002, 2003, 2006, 2013, 2055), too many
# connections (1040), shutdown in progress (1053), deadlock (1213), connection killed (1927), idle
# disconnect (4031).
_MYSQL_UNAVAILABLE = {1040, 1053, 1213, 1927, 2002, 2003, 2006, 2013, 2055, 4031}


class DatabaseUnavailable(Unavailable):
    """The database cannot serve the request right now (503, retry later).

    ``cause`` names the driver's error class and code for the log; it never holds the statement or its
    parameters (SQLAlchemy's text of the error does, and they may be a secret's metadata).
    """

    def __init__(self, cause: str) -> None:
        super().__init__("The database is unreachable; try again later.")
        self.cause = cause


def unavailable_cause(exc: BaseException) -> str | None:
    """A short, data-free description of ``exc`` if it means the database is unavailable, else None."""
    if isinstance(exc, sa_exc.TimeoutError):
        return "no free connection in the pool"
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return None
    orig = exc.orig
    driver = f"{type(orig).__module__.split('.')[0]}.{type(orig).__name__}"
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        if sqlite_code & 0xFF not in _SQLITE_UNAVAILABLE:
            return None
        return f"{driver} {getattr(orig, 'sqlite_errorname', sqlite_code)}"
    if driver.startswith("psycopg."):
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate is None:  # raised by the client: no connection, or it broke
            return driver
        return f"{driver} sqlstate {sqlstate}" if sqlstate.startswith(_PG_UNAVAILABLE_CLASSES) else None
    args = getattr(orig, "args", ())
    if driver.startswith("pymysql."):
        errno = args[0] if args and isinstance(args[0], int) else None
        if isinstance(exc, sa_exc.InterfaceError) or errno in _MYSQL_UNAVAILABLE:
            return f"{driver} {errno}" if errno else driver
        return None
    return driver


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
        cause = unavailable_cause(exc)
        if cause is None:
            raise
        metrics.DB_UNAVAILABLE.inc()
        # from None: the driver's error text quotes the statement and its parameters.
        raise DatabaseUnavailable(cause) from None


class Database:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        # SQLite: a read is a local file read (WAL: never behind a writer), fit for the event loop.
        self._local = self.dialect == "sqlite"
        # Per event loop thread (a server's worker has one; tests may run several apps), see _loop_read.
        self._loop_connection = threading.local()
        self._loop_connections: list[Connection] = []
        self._lock_path: Path | None = None
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                self._lock_path = Path(database + ".write-lock")
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            # Enough connections for the server's request threads: opening a SQLite connection (and its
            # pragmas) per request was measurable; they are cheap to keep.
            kwargs["pool_size"] = max(pool_size, 32)
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 2 * pool_size
            kwargs["pool_recycle"] = 3600
            if self.dialect == "mysql":
                # InnoDB's default REPEATABLE READ takes its snapshot at a transaction's first read, so a
                # count made after taking the project lock could still see the snapshot from before it
                # (quota over-admission), and its gap locks deadlock concurrent first inserts. READ
                # COMMITTED is what PostgreSQL does by default and what Galera clusters recommend.
                kwargs["isolation_level"] = "READ COMMITTED"
        self.engine: Engine = create_engine(url, **kwargs)
        # PostgreSQL: a read runs without a transaction of its own. Under READ COMMITTED (PostgreSQL's default)
        # each statement takes its own snapshot anyway, so an explicit transaction only added its BEGIN and
        # the pool's ROLLBACK on check-in: two of a read's four round trips (ping and query were the
        # others). psycopg switches autocommit on the client, without a round trip; PyMySQL would send one.
        self._read_engine: Engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.dialect == "postgresql" else self.engine
        )
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        else:
            _ping_after_idle(self.engine, PING_AFTER_IDLE)
        _count_checkouts(self.engine)
        # SQLite serializes its writers host-wide, each commit an fsync. PostgreSQL and MariaDB run concurrent
        # transactions and flush the commits that wait together in one WAL write, but each transaction still
        # costs its round trips (BEGIN, statements, COMMIT) and a worker thread: grouped, a batch pays them once
        # (PostgreSQL stores: 1.66x the requests per second at two thirds of the CPU per request).
        # PostgreSQL through psycopg: reads on the event loop, awaiting the database there (loop_reads), and
        # the loop's group commits too.
        self._loop_engines: LoopEngines | None = None
        if self.dialect == "postgresql" and awaits_on_loop(parsed.get_driver_name()):
            self._loop_engines = LoopEngines(
                url, pool_size=pool_size, configure=self._configure_loop_engine, reuse_within=PING_AFTER_IDLE
            )
        self._group_commit = GroupCommit(
            self.write,
            savepoints=self.dialect == "sqlite",
            loop_transaction=self._loop_transaction if self._loop_engines is not None else None,
        )

    @property
    def reads_await_on_loop(self) -> bool:
        """Whether reads run on the event loop with the driver awaiting there (``loop_reads.run_awaiting``)."""
        return self._loop_engines is not None

    @staticmethod
    def _configure_loop_engine(engine: Engine) -> None:
        _ping_after_idle(engine, PING_AFTER_IDLE)
        _count_checkouts(engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        if on_loop():
            if self._local:
                with self._loop_read() as conn:
                    yield conn
                return
            if self._loop_engines is None or not driver_awaits():
                may_block("a database read over the network")
            assert self._loop_engines is not None
            with _reachable(), self._loop_engines.read_connection(self._connect) as conn:
                yield conn
            return
        with _reachable(), self._connect(self._read_engine) as conn:
            yield conn

    @contextmanager
    def _loop_read(self) -> Iterator[Connection]:
        """The event loop thread's own SQLite connection, kept checked out: reads on the loop run one at a
        time and to completion, and a pool checkout and check-in per read cost as much as the read."""
        conn: Connection | None = getattr(self._loop_connection, "conn", None)
        if conn is None:
            pool = self.engine.pool
            if not isinstance(pool, QueuePool) or pool.checkedin() == 0:
                may_block("a database connection")  # every pooled connection busy: a checkout may wait
            with _reachable():
                conn = self._connect()
            self._loop_connection.conn = conn
            self._loop_connections.append(conn)
        try:
            with _reachable():
                yield conn
        except WouldBlock:
            raise  # a later step, not this connection: it stays as it is
        except BaseException:
            # Whatever failed may have left a statement open: the connection goes back (its reset rolls it
            # back) and the next read on the loop takes a fresh one.
            self._loop_connection.conn = None
            self._loop_connections.remove(conn)
            conn.close()
            raise

    def _connect(self, engine: Engine | None = None) -> Connection:
        # connect() checks a connection out of the pool (waiting for one, pinging it if idle) right away.
        started = time.perf_counter()
        try:
            return (engine or self.engine).connect()
        finally:
            metrics.DB_POOL_WAIT.observe(time.perf_counter() - started)

    @contextmanager
    def write(self, *, foreign_keys: bool = True) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on any exception.

        ``foreign_keys=False`` is for migrations that rebuild a SQLite table (the only way SQLite adds a
        CHECK constraint): dropping the old table with enforcement on would cascade-delete every child row.
        Enforcement is off for that transaction only, and ``PRAGMA foreign_key_check`` must pass before it
        commits (SQLite's own 12-step procedure). Other databases ignore it.
        """
        may_block("a database write")
        if self._lock_path is None:
            with _reachable(), self._transaction(foreign_keys) as conn:
                yield conn
            return
        waiting = time.perf_counter()
        with self._thread_lock:
            fd = self._lock_fd
            if fd is None:
                fd = self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            metrics.DB_WRITE_LOCK_WAIT.observe(time.perf_counter() - waiting)
            try:
                with _reachable(), self._transaction(foreign_keys) as conn:
                    yield conn
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def write_grouped(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction and return its result once that transaction is committed.

        Writes from concurrent callers share one transaction (one that raises is rolled back alone) and one
        commit: see ``group_commit``. ``work`` may run on another caller's thread, and must not rely on
        thread-local state. Its exception is raised here, and nothing it wrote is kept.
        """
        may_block("a database write")
        return self._group_commit.run(work)

    async def write_grouped_async(self, work: Callable[[Connection], T]) -> T:
        """``write_grouped`` for the event loop: the write joins the next group commit, led by a committer
        thread that answers the loop once per batch."""
        return await self._group_commit.run_async(work)

    @contextmanager
    def _loop_transaction(self) -> Iterator[Connection]:
        """A write transaction on the running loop's engine, for a greenlet there (``group_commit``)."""
        assert self._loop_engines is not None
        with _reachable(), self._connect(self._loop_engines.writer_for_running_loop()) as conn, conn.begin():
            yield conn

    @contextmanager
    def _transaction(self, foreign_keys: bool = True) -> Iterator[Connection]:
        unchecked = not foreign_keys and self.dialect == "sqlite"
        with self._connect() as conn:
            if unchecked:
                # Before BEGIN: SQLite ignores this pragma inside a transaction.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            try:
                conn.execution_options(donjon_write=True)  # SQLite: emit a real BEGIN (see _on_begin)
                with conn.begin():
                    yield conn
                    if unchecked and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise sa_exc.IntegrityError("PRAGMA foreign_key_check", None, Exception("dangling row"))
            finally:
                if unchecked:
                    # The pooled connection goes back enforcing again (outside a transaction, so no BEGIN).
                    conn.execution_options(donjon_write=False)
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()

    def dispose(self) -> None:
        self._group_commit.close()
        for conn in self._loop_connections:
            conn.close()
        self._loop_connections.clear()
        if self._loop_engines is not None:
            self._loop_engines.close()
        self.engine.dispose()


# A pooled server connection unused for this long is pinged before it is handed out (see _ping_after_idle).
PING_AFTER_IDLE = 1.0


def _ping_after_idle(engine: Engine, idle: float) -> None:
    """Ping a pooled connection on checkout only if it sat idle for ``idle`` seconds or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip per request, a third of a PostgreSQL
    read's. A connection checked in moments ago was working moments ago; one that sat in the pool may have
    been cut (a database restart, a failover, an idle timeout), and a failed ping makes the pool replace it
    (DisconnectionError), as pre-ping does. A database that goes away while connections are busy is seen by
    the statement itself: a 503 (``DatabaseUnavailable``), and SQLAlchemy then invalidates the pool, so every
    older connection is replaced at its next checkout.
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info["donjon_checked_in"] = time.monotonic()  # just connected: nothing to check yet

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["donjon_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("donjon_checked_in", 0.0) < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the driver's own error class: whatever it is, this connection is gone
            raise sa_exc.DisconnectionError(type(exc).__name__) from None


def _count_checkouts(engine: Engine) -> None:
    @event.listens_for(engine, "checkout")
    def _on_checkout(*_: Any) -> None:
        metrics.DB_CONNECTIONS_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _on_checkin(*_: Any) -> None:
        metrics.DB_CONNECTIONS_IN_USE.dec()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (pysqlite's implicit BEGIN is late).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Freed cells are zeroed, so a deleted ciphertext or KEK does not linger in the file (on by default
        # in Debian's build, not in SQLite's own).
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writes get a real transaction. Reads run in SQLite's autocommit mode: each SELECT sees one
        # consistent snapshot by itself, and the BEGIN/ROLLBACK round trip per read was measurable.
        if conn.get_execution_options().get("donjon_write"):
            conn.exec_driver_sql("BEGIN")
