"""Reads served on the event loop, and the steps that must not run there.

With SQLite, the common reads (a payload, a secret, a list) touch only a local file and caches: answering
them on the event loop saves the hop to a worker thread and back, which cost more than the read itself. With
PostgreSQL they run on the loop too, in a greenlet where psycopg's asyncio connection waits for the server
(:func:`run_awaiting`, ``donjon.storage.loop_reads``).
Any step on the way that could wait (a database over the network, a write and its lock, a keystore, an
external secret store, an audit record's fsync) calls :func:`may_block` first. On the loop that raises
:class:`WouldBlock`, before the step has any effect, and the API runs the whole call again in a worker
thread (``donjon.api.common.run_read``). Off the loop, :func:`may_block` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy.util import greenlet_spawn

R = TypeVar("R")

_ON_LOOP: ContextVar[bool] = ContextVar("donjon_on_loop", default=False)
_DRIVER_AWAITS: ContextVar[bool] = ContextVar("donjon_driver_awaits", default=False)


class WouldBlock(BaseException):  # noqa: N818 - a signal to move the call, not an error
    """A step of a call made on the event loop would wait: run the call in a worker thread instead.

    A BaseException, so that no ``except Exception`` on the way turns it into an error answer."""


def on_loop() -> bool:
    """Whether the current call is marked as running on the event loop."""
    return _ON_LOOP.get()


def may_block(step: str) -> None:
    """Before a step that may wait (``step`` names it, for debugging): refuse it on the event loop."""
    if _ON_LOOP.get():
        raise WouldBlock(step)


def driver_awaits() -> bool:
    """Whether the current call runs in a greenlet on the loop, where an asyncio database driver may wait."""
    return _DRIVER_AWAITS.get()


@contextmanager
def on_event_loop(*, driver_awaits: bool = False) -> Iterator[None]:
    """Mark the calls made inside as running on the event loop: their blocking steps raise WouldBlock."""
    token = _ON_LOOP.set(True)
    awaits = _DRIVER_AWAITS.set(driver_awaits)
    try:
        yield
    finally:
        _DRIVER_AWAITS.reset(awaits)
        _ON_LOOP.reset(token)


async def run_awaiting(fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """``fn(*args, **kwargs)`` on the running loop, in a greenlet (SQLAlchemy's) where an asyncio database
    driver may wait: each of its round trips suspends the greenlet and lets the loop serve others meanwhile
    (``donjon.storage.loop_reads``). Raises :class:`WouldBlock`, before any effect, if another step would
    block."""
    return await greenlet_spawn(_awaiting, fn, args, kwargs)


def _awaiting(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    with on_event_loop(driver_awaits=True):
        return fn(*args, **kwargs)
