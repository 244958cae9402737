"""``POST``/``DELETE /v1/secrets/{id}/consumers``: Barbican 23's ``SecretConsumerValidator``."""

from __future__ import annotations

from typing import Any

from donjon.api.schemas._adapter import RequestSchema, schema_error
from donjon.api.schemas.secrets import stripped
from donjon.services.commands import NewConsumer

_FIELD = {"type": "string", "minLength": 1, "maxLength": 255}

SECRET_CONSUMER = RequestSchema(
    "Secret Consumer",
    {
        "type": "object",
        "required": ["service", "resource_type", "resource_id"],
        "properties": {"service": _FIELD, "resource_type": _FIELD, "resource_id": _FIELD},
    },
)


def new_consumer(body: Any) -> NewConsumer:
    SECRET_CONSUMER.validate(body)
    fields = []
    for key in ("service", "resource_type", "resource_id"):
        value = stripped(body, key, SECRET_CONSUMER.name)
        if not value:  # blank once stripped
            raise schema_error(SECRET_CONSUMER.name, f"'{key}' must be 1 to 255 characters", key)
        fields.append(value)
    return NewConsumer(*fields)
