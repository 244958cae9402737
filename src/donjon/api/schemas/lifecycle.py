"""donjon's lifecycle extensions: a new version's payload (``POST /v1/secrets/{id}/versions``) and a wrap
request (``POST /v1/secrets/{id}/wrap``)."""

from __future__ import annotations

from typing import Any

from donjon.api import payload_types
from donjon.api.schemas._adapter import RequestSchema, schema_error
from donjon.api.schemas.secrets import stripped, text
from donjon.errors import TooLarge
from donjon.services.commands import NewPayload
from donjon.services.payloads import normalize_content_type

SECRET_VERSION = RequestSchema(
    "Secret Version",
    {
        "type": "object",
        "required": ["payload", "payload_content_type"],
        "properties": {
            "payload": {"type": "string", "description": "not blank; stored byte-exact, base64 for binary types"},
            "payload_content_type": {**text(), "description": "as for POST /v1/secrets"},
            "payload_content_encoding": {"enum": ["base64"]},
        },
    },
    secret={"payload"},
)

WRAP = RequestSchema(
    "Wrap",
    {
        "type": "object",
        "properties": {
            "ttl": {
                "type": ["integer", "null"],
                "description": "seconds, 1 to lifecycle.wrap_max_ttl_seconds (absent: wrap_default_ttl_seconds)",
            }
        },
    },
)


def new_version(body: Any, max_secret_bytes: int) -> NewPayload:
    SECRET_VERSION.validate(body)
    payload = body["payload"]
    if not payload.strip():
        raise schema_error(SECRET_VERSION.name, "'payload' is a required non-empty string", "payload")
    if len(payload.encode("utf-8")) > max_secret_bytes:
        raise TooLarge("Provided information too large to process")
    content_type_raw = stripped(body, "payload_content_type", SECRET_VERSION.name)
    if not content_type_raw:
        raise schema_error(SECRET_VERSION.name, "'payload_content_type' is a required property", "payload_content_type")
    content_type = normalize_content_type(content_type_raw)
    encoding = body.get("payload_content_encoding")
    return NewPayload(content_type, payload_types.decode_payload(payload, content_type, encoding))


def wrap_ttl(body: Any) -> int | None:
    """``{"ttl": seconds}``; None (the default) when absent or null."""
    ttl: int | float | None = WRAP.validate(body).get("ttl")
    return None if ttl is None else int(ttl)
