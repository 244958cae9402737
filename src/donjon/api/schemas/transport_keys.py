"""``POST /v1/transport_keys``: Barbican 23's ``NewTransportKeyValidator``, bounded to the columns."""

from __future__ import annotations

from typing import Any

from donjon.api.schemas._adapter import RequestSchema, schema_error
from donjon.api.schemas.secrets import stripped

MAX_KEY_BYTES = 65_535  # the TEXT column on MariaDB (a 500 there in Barbican)

TRANSPORT_KEY = RequestSchema(
    "Transport Key",
    {
        "type": "object",
        "properties": {
            "plugin_name": {"type": "string", "maxLength": 255, "description": "required, not blank"},
            "transport_key": {"type": "string", "description": f"required, not blank, at most {MAX_KEY_BYTES} bytes"},
        },
    },
)


def new_transport_key(body: Any) -> tuple[str, str]:
    """Both strings, non-empty once stripped (Barbican's checks after its schema); donjon also bounds the key
    to its column and refuses NUL characters (each a 500 from the database in Barbican)."""
    TRANSPORT_KEY.validate(body)
    values = []
    for key in ("plugin_name", "transport_key"):
        value = stripped(body, key, TRANSPORT_KEY.name)
        if not value:
            raise schema_error(TRANSPORT_KEY.name, f"{key} must be provided", key)
        values.append(value)
    if len(values[1].encode()) > MAX_KEY_BYTES:  # reachable when limits.max_request_bytes is raised
        raise schema_error(TRANSPORT_KEY.name, f"'transport_key' is longer than {MAX_KEY_BYTES} bytes", "transport_key")
    return values[0], values[1]
