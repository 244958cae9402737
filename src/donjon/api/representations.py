"""Response bodies, key for key as python-barbicanclient builds objects from them (spec §2.1)."""

from __future__ import annotations

from typing import Any

from donjon.api.schemas import shapes
from donjon.services.secrets import ConsumerRecord, SecretView
from donjon.timeutil import isoformat


def secret_ref(base: str, secret_id: str) -> str:
    return f"{base}/v1/secrets/{secret_id}"


def consumer_location(base: str, entity_id: str) -> str:
    """The ``Location`` of a consumer registration, as Barbican builds it (``hrefs.convert_consumer_to_href``
    of the secret's or container's id): ``{host_href}/v1/consumers/{id}/consumers``. It names no resource, in
    Barbican either; it is sent because Barbican's clients and tests may read it."""
    return f"{base}/v1/consumers/{entity_id}/consumers"


def consumer_brief(c: ConsumerRecord) -> dict[str, str]:
    return {"service": c.service, "resource_type": c.resource_type, "resource_id": c.resource_id}


def consumer_full(c: ConsumerRecord) -> dict[str, Any]:
    return {
        **consumer_brief(c),
        "created": isoformat(c.created_at),
        "updated": isoformat(c.updated_at),
        "status": "ACTIVE",
    }


def secret_body(base: str, view: SecretView, *, with_consumers: bool) -> dict[str, Any]:
    s = view.secret
    body: dict[str, Any] = {
        "secret_ref": secret_ref(base, s.id),
        "name": s.name,
        "secret_type": s.secret_type,
        "status": "ACTIVE",
        "created": isoformat(s.created_at),
        "updated": isoformat(s.updated_at),
        "expiration": isoformat(s.expiration),
        "algorithm": s.algorithm,
        "bit_length": s.bit_length,
        "mode": s.mode,
        "creator_id": s.creator_id,
    }
    if with_consumers:
        body["consumers"] = [consumer_brief(c) for c in view.consumers]
    if s.content_type is not None:
        body["content_types"] = {"default": s.content_type}
    return body


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
CONSUMER: shapes.Schema = {
    "type": "object",
    "required": ["service", "resource_type", "resource_id"],
    "properties": {
        "service": shapes.string(255),
        "resource_type": shapes.string(255),
        "resource_id": shapes.string(255),
    },
}
RESPONSES: shapes.Schema = {
    "Consumer": CONSUMER,
    "Secret": {
        "type": "object",
        "required": [
            "secret_ref",
            "name",
            "secret_type",
            "status",
            "created",
            "updated",
            "expiration",
            "algorithm",
            "bit_length",
            "mode",
            "creator_id",
        ],
        "additionalProperties": False,
        "properties": {
            "secret_ref": {"type": "string", "format": "uri"},
            "name": shapes.string(255, nullable=True),
            "secret_type": {"type": "string"},
            "status": {"const": "ACTIVE"},
            "created": shapes.TIMESTAMP,
            "updated": shapes.TIMESTAMP,
            "expiration": shapes.NULLABLE_TIMESTAMP,
            "algorithm": shapes.string(nullable=True),
            "bit_length": {"type": ["integer", "null"]},
            "mode": shapes.string(nullable=True),
            "creator_id": shapes.string(nullable=True),
            "consumers": {
                "type": "array",
                "items": shapes.ref("Consumer"),
                "description": "microversion 1.1 and later",
            },
            "content_types": {"type": "object", "description": "present only when a payload is stored"},
        },
    },
    "SecretList": shapes.page("secrets", shapes.ref("Secret")),
    "SecretConsumerList": shapes.page("consumers", shapes.listed(CONSUMER)),
}
