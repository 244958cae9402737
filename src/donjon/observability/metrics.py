"""The server's Prometheus metrics, and their exposition for ``/metrics``.

``donjon server`` runs several worker processes; each counts in its own memory-mapped files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by :func:`prepare_multiprocess_dir`
before the workers start), and ``/metrics`` sums them, so whichever worker answers the scrape reports the
whole server. Without that directory (one process, the tests' in-process app) the default registry is used.

Labels never carry a secret, a resource id or a project: routes are templates (``/v1/secrets/{secret_id}``),
and the per-project counter exists only when the operator turns it on (``metrics.project_label``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

# The *_created samples (one per series, the time it was created) are left out: multiprocess mode has none,
# and one process's start time says nothing about the server's.
disable_created_metrics()  # type: ignore[no-untyped-call]
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Calls to a keystore, an audit fsync, a lock: from sub-millisecond to seconds.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _seconds(name: str, documentation: str, labels: Sequence[str] = ()) -> Histogram:
    """A histogram of durations, in the buckets every donjon timing shares."""
    return Histogram(name, documentation, labels, buckets=_FAST_BUCKETS)


HTTP_REQUESTS = Counter(
    "donjon_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_REQUESTS_BY_PROJECT = Counter(
    "donjon_http_requests_by_project",
    "HTTP requests by the caller's project (only with metrics.project_label).",
    ["project", "method", "status"],
)
HTTP_DURATION = _seconds(
    "donjon_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response.",
    ["method", "route"],
)
AUDIT_WRITE = _seconds(
    "donjon_audit_write_seconds", "Time to put one audit event on record (with fsync: its group commit)."
)
AUDIT_FAILURES = Counter("donjon_audit_write_failures", "Audit events the audit log did not accept.")
AUDIT_FDATASYNC_RECORDS = Histogram(
    "donjon_audit_fdatasync_records",
    "Audit records an event loop appended together and made durable with one fdatasync (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
DB_POOL_WAIT = _seconds(
    "donjon_db_pool_wait_seconds", "Time to get a database connection from the pool (a ping included for an idle one)."
)
DB_CONNECTIONS_IN_USE = Gauge(
    "donjon_db_connections_in_use", "Database connections checked out of the pools.", multiprocess_mode="livesum"
)
DB_WRITE_LOCK_WAIT = _seconds(
    "donjon_db_write_lock_wait_seconds", "SQLite: time a write transaction waited for the host-wide writer lock."
)
DB_GROUP_COMMIT_SIZE = Histogram(
    "donjon_db_group_commit_writes",
    "Writes that shared one transaction and one commit (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
DB_UNAVAILABLE = Counter("donjon_db_unavailable", "Database operations that failed as unavailable (503).")
KEYSTORE_CALL = _seconds(
    "donjon_keystore_call_seconds",
    "Calls to the root keystore (wrap and unwrap of project KEKs).",
    ["keystore", "operation"],
)
KEYSTORE_ERRORS = Counter(
    "donjon_keystore_errors",
    "Keystore calls that raised, by the exception's class name.",
    ["keystore", "operation", "error"],
)
KEK_CACHE = Counter("donjon_kek_cache_lookups", "Project KEK cache lookups, hit or miss.", ["result"])
READS_ON_LOOP = Counter(
    "donjon_reads_on_loop",
    "Reads tried on the event loop (SQLite, PostgreSQL): served there, or moved to a worker thread (a step would wait)",
    ["outcome"],
)
ORDERS_QUEUED = Counter("donjon_orders_queued", "Orders accepted (202) and queued for a worker.")
ORDERS_CLAIMED = Counter("donjon_orders_claimed", "Orders claimed by an order worker.")
ORDERS_COMPLETED = Counter("donjon_orders_completed", "Orders that ended ACTIVE.")
ORDERS_FAILED = Counter(
    "donjon_orders_failed",
    "Orders that ended in ERROR: refused (4xx, e.g. unsupported) or failing (5xx).",
    ["reason"],
)
ORDER_ATTEMPT_ERRORS = Counter("donjon_order_attempt_errors", "Order attempts that raised unexpectedly (retried).")
REAPER_RUNS = Counter("donjon_reaper_runs", "Expiry reaper passes, by outcome.", ["outcome"])
REAPED = Counter("donjon_reaper_reaped", "Rows the expiry reaper removed, by kind.", ["kind"])

for _label in ("hit", "miss"):
    KEK_CACHE.labels(_label)
for _label in ("ok", "error"):
    REAPER_RUNS.labels(_label)
for _label in ("served", "moved"):
    READS_ON_LOOP.labels(_label)


def multiprocess_mode() -> bool:
    """Whether this process counts in shared files (prometheus-client chose its value class at import)."""
    return values.ValueClass is not values.MutexValue


def render() -> bytes:
    """The text exposition of every metric: all workers' files in multiprocess mode, else this process's."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty ``path`` and point prometheus-client at it; before any worker process starts.

    Files left by a previous run would be summed into this one's counters; the directory is the server's
    own (in its data dir), so it is removed whole.
    """
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)


def process_exited() -> None:
    """A worker's live gauges stop counting when it stops (multiprocess mode)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
