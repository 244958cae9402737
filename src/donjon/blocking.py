"""Reads served on the event loop, and the steps that must not run there.

With SQLite, the common reads (a payload, a secret, a list) touch only a local file and caches: answering
them on the event loop saves the hop to a worker thread and back, which cost more than the read itself.
Any step on the way that could wait (a database over the network, a write and its lock, a keystore, an
external secret store, an audit record's fsync) calls :func:`may_block` first. On the loop that raises
:class:`WouldBlock`, before the step has any effect, and the API runs the whole call again in a worker
thread (``donjon.api.common.run_read``). Off the loop, :func:`may_block` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ON_LOOP: ContextVar[bool] = ContextVar("donjon_on_loop", default=False)


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


@contextmanager
def on_event_loop() -> Iterator[None]:
    """Mark the calls made inside as running on the event loop: their blocking steps raise WouldBlock."""
    token = _ON_LOOP.set(True)
    try:
        yield
    finally:
        _ON_LOOP.reset(token)
