"""Answering event-loop callers from a worker thread: one wake-up per loop for a whole batch.

The group commits of the audit log (``audit.commit``) and of the database (``storage.group_commit``) finish a
batch in their own thread and must tell every awaiting coroutine its outcome on the coroutine's own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence


def settle(futures: Sequence[asyncio.Future[None]], error: BaseException | None = None) -> None:
    """Answer every caller of a batch: done, or ``error``. Runs on the futures' event loop; a caller that went
    away (its task cancelled) is skipped."""
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def settle_from_thread(
    waiting: Iterable[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]], error: BaseException | None = None
) -> None:
    """``settle`` from another thread: each loop is woken once, with all of its futures."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for loop, future in waiting:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle, futures, error)
        except RuntimeError:
            pass  # that loop is closed: nobody is waiting any more
