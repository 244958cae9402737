"""Time as the API and the database see it: naive UTC, as Barbican serialises it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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
