"""``POST /v1/secrets``: Barbican 23's secret schema (``NewSecretValidator``) and the checks it cannot say."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from donjon.api import payload_types
from donjon.api.schemas._adapter import RequestSchema, Schema, schema_error
from donjon.errors import InvalidInput, TooLarge
from donjon.options import closest
from donjon.services.commands import NewSecret
from donjon.services.payloads import normalize_content_type
from donjon.timeutil import parse_iso8601

SECRET_TYPES = ("symmetric", "public", "private", "passphrase", "certificate", "opaque")
MAX_READS_LIMIT = 1_000_000
# Barbican's bit_length column is a MySQL SMALLINT.
MAX_BIT_LENGTH = 32767


def text(*, nullable: bool = False, max_length: int = 255) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", "maxLength": max_length}


# The attributes a secret and an order's meta share.
SECRET_ATTRIBUTES: Schema = {
    "name": text(nullable=True),
    "algorithm": text(),
    "mode": text(),
    "bit_length": {"type": "integer", "minimum": 1, "maximum": MAX_BIT_LENGTH},
    "expiration": {"type": "string", "description": "ISO-8601, in the future; empty for none"},
    "secret_type": {"enum": list(SECRET_TYPES)},
}

SECRET = RequestSchema(
    "Secret",
    {
        "type": "object",
        "properties": {
            **SECRET_ATTRIBUTES,
            "payload": {
                "type": ["string", "null"],
                "description": "stored byte-exact; base64 for binary content types",
            },
            "payload_content_type": {
                **text(nullable=True),
                "description": "text/plain (optionally ;charset=utf-8), application/octet-stream or application/pkcs8",
            },
            "payload_content_encoding": {"enum": ["base64"]},
            # Accepted as Barbican's clients send them; asking for a transport key is refused after the schema.
            "transport_key_needed": {"description": "'true' is refused: no transport-key plugin is served"},
            "transport_key_id": {"description": "refused when given: no transport-key plugin is served"},
            "max_reads": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_READS_LIMIT,
                "description": "donjon extension: the payload is served this many times, then deleted",
            },
        },
    },
    secret={"payload"},
)

# Barbican ignores properties its schema does not name, and so does donjon, except a near spelling of one of
# donjon's own extensions: its effect (burn after reading) would silently be lost, so it is refused.
SECRET_EXTENSIONS = ("max_reads",)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def refuse_near_misses(body: dict[str, Any], schema: RequestSchema, extensions: tuple[str, ...]) -> None:
    """400 for an unknown property that is a near spelling (``max_read``, ``maxReads``, ``max-reads``) of a
    donjon extension; every other unknown property is ignored, as Barbican does."""
    known = schema.schema["properties"]
    for key in body:
        if key in known:
            continue
        spelled = _CAMEL_HUMP.sub(r"_\1", key).lower().replace("-", "_")  # maxReads, MAX-READS: max_reads
        guess = closest(spelled, extensions, cutoff=0.8)
        if guess is not None:
            raise schema_error(schema.name, f"unknown property {key!r}: did you mean {guess!r}?", key)


def has_nul(value: str) -> bool:
    """PostgreSQL's text types cannot hold U+0000 (a 500 there, stored as is elsewhere): refused everywhere."""
    return "\x00" in value


def stripped(body: dict[str, Any], key: str, schema: str) -> str | None:
    """A text property the schema passed, stripped as Barbican strips it, refused if it holds a NUL."""
    value = body.get(key)
    if value is None:
        return None
    value = value.strip()
    if has_nul(value):
        raise schema_error(schema, f"'{key}' must not contain NUL characters", key)
    return str(value)


def secret_attributes(body: dict[str, Any], schema: str, *, now: datetime) -> dict[str, Any]:
    """The non-payload attributes of a body that passed SECRET_ATTRIBUTES (a secret, an order's meta)."""
    return {
        "name": stripped(body, "name", schema),
        "algorithm": stripped(body, "algorithm", schema),
        "mode": stripped(body, "mode", schema),
        "secret_type": body.get("secret_type", "opaque"),
        "bit_length": _integer(body.get("bit_length")),
        "expiration": expiration(body, schema, now=now),
    }


def _integer(value: int | float | None) -> int | None:
    """JSON Schema counts 256.0 as an integer; the column wants 256."""
    return None if value is None else int(value)


def expiration(body: dict[str, Any], schema: str, *, now: datetime) -> datetime | None:
    """The body's expiration as naive UTC, refused unless after ``now`` (the caller's clock)."""
    raw = stripped(body, "expiration", schema)
    if not raw:
        return None
    try:
        when = parse_iso8601(raw)
    except ValueError:
        raise schema_error(schema, "Invalid date for 'expiration'", "expiration") from None
    if when <= now:
        raise InvalidInput("'expiration' is before current time")
    return when


def new_secret(body: Any, max_secret_bytes: int, *, now: datetime) -> NewSecret:
    """``POST /v1/secrets``: the schema, then what it cannot say (dates, payload rules, near misses)."""
    SECRET.validate(body)
    if not isinstance(body, dict):  # the schema's "type": "object" already refused it; for the type checker
        raise schema_error(SECRET.name, "the body is not a JSON object")
    refuse_near_misses(body, SECRET, SECRET_EXTENSIONS)
    attrs = secret_attributes(body, SECRET.name, now=now)
    attrs["max_reads"] = _integer(body.get("max_reads"))
    if str(body.get("transport_key_needed", "false")).lower() == "true" or body.get("transport_key_id"):
        raise InvalidInput("Secret store supported plugin not found.")
    content_type_raw = stripped(body, "payload_content_type", SECRET.name)
    encoding = body.get("payload_content_encoding")
    payload = body.get("payload")
    if payload is None:
        if content_type_raw:
            raise InvalidInput("payload must be provided when payload_content_type is specified")
        # A payload_content_encoding alone is accepted and ignored, as Barbican does (its schema only checks
        # that it is "base64"); python-barbicanclient sends it with two-step secrets.
        return NewSecret(**attrs)
    # The payload is stored byte-exact: unlike Barbican, it is not whitespace-stripped.
    if not payload.strip():
        raise schema_error(SECRET.name, "If 'payload' is specified, must be non empty", "payload")
    if len(payload.encode("utf-8")) > max_secret_bytes:
        raise TooLarge("Provided information too large to process")
    if not content_type_raw:
        raise schema_error(
            SECRET.name, "payload_content_type is required when payload is given", "payload_content_type"
        )
    content_type = normalize_content_type(content_type_raw)
    data = payload_types.decode_payload(payload, content_type, encoding)
    return NewSecret(**attrs, content_type=content_type, payload=data)
