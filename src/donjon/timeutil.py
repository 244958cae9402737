"""Time as the API and the database see it: naive UTC, as Barbican serialises it; and the clock that tells it.

The services, repositories' callers and workers that need "now" take a ``Clock`` (``SYSTEM_CLOCK`` unless told
otherwise) instead of reading the system time themselves, so that tests move time (an expiry, a lease, a
token's TTL) instead of sleeping until it passes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Clock(Protocol):
    """Where "now" comes from: wall time for what is stored and compared in the database, monotonic seconds
    for durations kept in memory (the ``timer`` of ``donjon.cache.ExpiringCache``)."""

    def now(self) -> datetime:
        """Naive UTC, as the database stores it."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go backwards (``time.monotonic``)."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


def parse_iso8601(value: str) -> datetime:
    """Any ISO-8601 timestamp, with or without a zone, as naive UTC. Raises ValueError.

    A zoned time at the edge of datetime's range (``9999-12-31T23:59:59-14:00``) has no UTC equivalent:
    the conversion's OverflowError is a ValueError here, like any other unusable timestamp.
    """
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError("the timestamp is out of range in UTC") from None
    return parsed


def isoformat(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
