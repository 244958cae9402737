"""The auditor: hands each event to the sinks and says whether one accepted it (for fail-closed)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from donjon.audit.chain import load_audit_key
from donjon.audit.sinks import FileSink, NotificationSink
from donjon.config import Settings
from donjon.errors import ConfigurationError
from donjon.observability import metrics

log = logging.getLogger("donjon.audit")


class Auditor:
    def __init__(self, file: FileSink, notifications: NotificationSink | None, *, fail_closed: bool) -> None:
        self.file = file
        self.notifications = notifications
        self.fail_closed = fail_closed
        self._last_error = 0.0

    async def record(self, event: dict[str, Any]) -> bool:
        """Write ``event``; True if the log accepted it. Never raises."""
        accepted = True
        started = time.perf_counter()
        try:
            # With fsync, a group commit: waits for its batch's fdatasync on a future, not in a thread.
            await self.file.append_async(event)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the event is not on record
            accepted = False
            metrics.AUDIT_FAILURES.inc()
            now = time.monotonic()
            if now - self._last_error > 10.0:  # a full disk must not also flood the server log
                self._last_error = now
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
                log.error("audit: cannot write %s: %s", self.file.path, reason)
        metrics.AUDIT_WRITE.observe(time.perf_counter() - started)
        if self.notifications is not None:
            self.notifications.publish(event)
        return accepted

    def close(self) -> None:
        self.file.close()
        if self.notifications is not None:
            self.notifications.close()


def audit_paths(settings: Settings) -> tuple[Path, Path]:
    """(log path, key file) with their data-dir defaults."""
    audit = settings.audit
    return audit.path or settings.data_dir / "audit.log", audit.key_file or settings.data_dir / "audit.key"


def build_auditor(settings: Settings) -> Auditor | None:
    """The auditor of ``settings`` (None when auditing is off). Creates the audit key on first start."""
    audit = settings.audit
    if not audit.enabled:
        return None
    path, key_file = audit_paths(settings)
    key = load_audit_key(key_file, create=True)
    notifications = None
    if audit.notifications:
        if audit.transport_url is None:
            raise ConfigurationError("audit.notifications needs audit.transport_url")
        try:
            notifications = NotificationSink(audit.transport_url.get_secret_value(), audit.topic)
        except ImportError:
            raise ConfigurationError("audit notifications need oslo.messaging: pip install 'donjon[audit]'") from None
    return Auditor(FileSink(path, key, fsync=audit.fsync == "always"), notifications, fail_closed=audit.fail_closed)


def prepare_audit(settings: Settings) -> None:
    """Once, before workers start: the audit key, and a log and head state that can be opened."""
    if not settings.audit.enabled:
        return
    path, key_file = audit_paths(settings)
    sink = FileSink(path, load_audit_key(key_file, create=True), fsync=False)
    try:
        sink.open()
    except OSError as exc:
        raise ConfigurationError(f"audit log {path} cannot be opened: {exc.strerror}") from None
    finally:
        sink.close()
