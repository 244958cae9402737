"""Whether this process can do its work, for ``/readyz``: the database answers, the schema is at the
migrations' head, the keystore wraps and unwraps, and the audit log can be written.

Each check says only ``ok`` or what failed, never a driver message, a path or a URL: the probes take no
credentials (the cause goes to the server log). The result is shared for ``TTL`` seconds and each check
runs once at a time, so a flood of unauthenticated probes costs one keystore call per second at most, and
a dependency that hangs answers "timeout" after ``TIMEOUT`` seconds without tying up more than one thread.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from pathlib import Path

import anyio.to_thread

from donjon.audit.chain import head_path
from donjon.keystores import Keystore
from donjon.storage import migrate
from donjon.storage.database import Database

log = logging.getLogger("donjon.health")

# How long one result answers every probe of this worker.
TTL = 1.0
# How long a probe waits for the checks. One that takes longer answers "timeout" and keeps running: the
# next probes wait for that same check instead of starting another (a hung database must not pile up threads).
TIMEOUT = 3.0
_PROBE_KEY = bytes(32)  # wrapped and unwrapped by the keystore check: it protects nothing
_PROBE_CONTEXT = b"donjon readiness probe"
_TIMED_OUT = {
    "database": {"database": "timeout", "migrations": "unknown"},
    "keystore": {"keystore": "timeout"},
    "audit": {"audit": "timeout"},
}


class Readiness:
    def __init__(self, db: Database, keystore: Keystore, audit_log: Path | None) -> None:
        self._db = db
        self._keystore = keystore
        self._audit_log = audit_log
        self.timeout = TIMEOUT
        self.ttl = TTL
        self._head: str | None = None
        self._running: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._last: tuple[float, dict[str, str]] | None = None

    async def checks(self) -> dict[str, str]:
        if self._last is not None and time.monotonic() - self._last[0] < self.ttl:
            return self._last[1]
        for name, check in (("database", self._database), ("keystore", self._keystore_ok), ("audit", self._audit)):
            running = self._running.get(name)
            if running is None or running.done():
                self._running[name] = asyncio.ensure_future(anyio.to_thread.run_sync(check))
        await asyncio.wait(self._running.values(), timeout=self.timeout)
        result: dict[str, str] = {}
        for name, running in self._running.items():
            result.update(running.result() if running.done() else _TIMED_OUT[name])
        self._last = (time.monotonic(), result)
        return result

    # Each check runs in a worker thread and never raises: a failure is a value, its cause goes to the log.

    def _database(self) -> dict[str, str]:
        try:
            current = migrate.current_revision(self._db)
            if self._head is None:
                self._head = migrate.head_revision(self._db)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            _log_failure("database", exc)
            return {"database": "unreachable", "migrations": "unknown"}
        return {"database": "ok", "migrations": "ok" if current == self._head else "behind"}

    def _keystore_ok(self) -> dict[str, str]:
        try:
            wrapped = self._keystore.wrap(_PROBE_KEY, _PROBE_CONTEXT)
            ok = self._keystore.unwrap(wrapped, _PROBE_CONTEXT) == _PROBE_KEY
        except Exception as exc:  # noqa: BLE001
            _log_failure("keystore", exc)
            ok = False
        return {"keystore": "ok" if ok else "failing"}

    def _audit(self) -> dict[str, str]:
        if self._audit_log is None:
            return {"audit": "disabled"}
        try:
            check_writable(self._audit_log)
        except OSError as exc:
            _log_failure("audit", exc)
            return {"audit": "not writable"}
        return {"audit": "ok"}


def check_writable(audit_log: Path) -> None:
    """Raise OSError unless the audit log and its head open for writing and the disk has room.

    Separate descriptors, so the writer's are never touched from this thread, and nothing is written: a probe
    record every second would lengthen the chain for nothing. Created if missing, as the writer would.
    """
    audit_log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (audit_log, head_path(audit_log)):
        os.close(os.open(path, os.O_CLOEXEC | os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    if os.statvfs(audit_log).f_bavail == 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _log_failure(check: str, exc: BaseException) -> None:
    # The exception's class and errno only: driver messages may quote a URL with its password.
    detail = f"{type(exc).__name__}" + (
        f" ({os.strerror(exc.errno)})" if isinstance(exc, OSError) and exc.errno else ""
    )
    log.warning("readiness: %s check failed: %s", check, detail)


def ready(checks: dict[str, str]) -> bool:
    return all(value in ("ok", "disabled") for value in checks.values())
