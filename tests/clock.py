"""A clock the test moves: give it to ``create_app(settings, clock=...)`` or to a service, then ``advance()``
instead of ``time.sleep()`` until an expiration, a lease or a TTL has passed."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from donjon.timeutil import utcnow


class MovableClock:
    """The machine's clock plus what the test added (``donjon.timeutil.Clock``).

    It keeps running with the machine's (rows created one after another still get increasing times, as lists
    ordered by creation expect), unless ``frozen``: then it only moves when told, for exact TTL arithmetic.
    """

    def __init__(self, *, frozen: bool = False) -> None:
        self._frozen = frozen
        self._wall = utcnow()
        self._mono = time.monotonic()
        self._offset = 0.0

    def now(self) -> datetime:
        base = self._wall if self._frozen else utcnow()
        return base + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return (self._mono if self._frozen else time.monotonic()) + self._offset

    def advance(self, seconds: float) -> None:
        """Move wall and monotonic time forward together (never back: caches and leases assume that)."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._offset += seconds

    def iso_in(self, seconds: float) -> str:
        """The clock's time ``seconds`` from now, as a client sends an expiration (ISO 8601, UTC)."""
        return (self.now() + timedelta(seconds=seconds)).isoformat()

    def __repr__(self) -> str:
        return f"MovableClock(offset={self._offset}s, frozen={self._frozen})"
