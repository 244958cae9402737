"""Barbican's request validation rules, with its error wording, as plain functions over parsed JSON."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from donjon.errors import InvalidInput
from donjon.services.commands import NewSecret
from donjon.timeutil import parse_iso8601

__all__ = ["NewSecret"]  # services.orders still takes it from here until orders has its command

# The range of the database's INTEGER columns (bit lengths, quotas): a value past it is refused, not sent.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SECRET_TYPES = ("symmetric", "public", "private", "passphrase", "certificate", "opaque")
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def is_canonical_uuid4(value: str) -> bool:
    return bool(_UUID4.match(value))


def has_nul(value: str) -> bool:
    """PostgreSQL's text types cannot hold U+0000 (a 500 there, stored as is elsewhere): refused everywhere."""
    return "\x00" in value


def schema_error(schema: str, message: str, prop: str | None = None) -> InvalidInput:
    text = f"Provided object does not match schema '{schema}': {message}"
    if prop:
        text += f". Invalid property: '{prop}'"
    return InvalidInput(text)


def optional_string(body: dict[str, Any], key: str, schema: str, *, nullable: bool, max_len: int = 255) -> str | None:
    if key not in body:
        return None
    value = body[key]
    if value is None:
        if nullable:
            return None
        raise schema_error(schema, "None is not of type 'string'", key)
    if not isinstance(value, str):
        raise schema_error(schema, f"{type(value).__name__} is not of type 'string'", key)
    value = value.strip()
    if len(value) > max_len:
        raise schema_error(schema, f"'{key}' is too long", key)
    if has_nul(value):
        raise schema_error(schema, f"'{key}' must not contain NUL characters", key)
    return value


def secret_attributes(body: dict[str, Any], schema: str = "Secret", *, now: datetime) -> dict[str, Any]:
    """The non-payload attributes of a secret (shared with order meta)."""
    attrs: dict[str, Any] = {
        "name": optional_string(body, "name", schema, nullable=True),
        "algorithm": optional_string(body, "algorithm", schema, nullable=False),
        "mode": optional_string(body, "mode", schema, nullable=False),
    }
    secret_type = optional_string(body, "secret_type", schema, nullable=False)
    if secret_type is not None and secret_type not in SECRET_TYPES:
        raise schema_error(schema, f"'{secret_type}' is not one of {list(SECRET_TYPES)}", "secret_type")
    attrs["secret_type"] = secret_type or "opaque"
    if "bit_length" in body:
        bits = body["bit_length"]
        if isinstance(bits, bool) or not isinstance(bits, int):
            raise schema_error(schema, f"{bits!r} is not of type 'integer'", "bit_length")
        if not 1 <= bits <= 32767:
            raise schema_error(schema, f"{bits} is out of range 1..32767", "bit_length")
        attrs["bit_length"] = bits
    else:
        attrs["bit_length"] = None
    attrs["expiration"] = parse_expiration(body, schema, now=now)
    return attrs


def parse_expiration(body: dict[str, Any], schema: str, *, now: datetime) -> datetime | None:
    """The body's expiration as naive UTC, refused unless after ``now`` (the caller's clock)."""
    raw = optional_string(body, "expiration", schema, nullable=False)
    if raw is None or raw == "":
        return None
    try:
        expiration = parse_iso8601(raw)
    except ValueError:
        raise schema_error(schema, "Invalid date for 'expiration'", "expiration") from None
    if expiration <= now:
        raise InvalidInput("'expiration' is before current time")
    return expiration
