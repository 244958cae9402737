"""The threads that only wait for the disk run under SCHED_BATCH (``donjon.io_threads``); the loop does not."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from donjon.audit.loop_sync import DiskWaiter
from donjon.io_threads import without_wakeup_preemption
from donjon.storage.database import Database

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")


def _policy(thread: threading.Thread | None) -> int:
    assert thread is not None and thread.native_id is not None
    return os.sched_getscheduler(thread.native_id)


def test_only_the_calling_thread_changes_policy() -> None:
    seen: list[int] = []

    def helper() -> None:
        without_wakeup_preemption()
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=helper)
    thread.start()
    thread.join()
    assert seen == [os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this thread (the one an event loop would run in)


def test_the_audit_fdatasync_thread_runs_under_sched_batch(tmp_path: Path) -> None:
    waiter = DiskWaiter()
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT, 0o600)
    try:

        async def one_sync() -> OSError | None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[OSError | None] = loop.create_future()
            waiter.fdatasync(fd, loop, done.set_result)
            return await done

        assert asyncio.run(one_sync()) is None
        assert _policy(waiter._thread) == os.SCHED_BATCH
    finally:
        waiter.close()
        os.close(fd)


def test_the_sqlite_committer_thread_runs_under_sched_batch(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:

        def work(conn: Connection) -> int:
            return int(conn.execute(text("SELECT 1")).scalar_one())

        assert asyncio.run(db.write_grouped_async(work)) == 1
        group = db._group_commit
        assert group is not None
        assert _policy(group._committer) == os.SCHED_BATCH
    finally:
        db.dispose()
