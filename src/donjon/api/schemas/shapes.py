"""Building blocks of the response schemas, which live beside the code that builds each answer and are
gathered into the OpenAPI document by api/openapi.py (and checked against every in-process response of the
suite by tests/openapi_conformance.py)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

TIMESTAMP: Schema = {"type": "string", "description": "naive UTC ISO-8601, e.g. 2026-11-25T06:39:59.040072"}
NULLABLE_TIMESTAMP: Schema = {"type": ["string", "null"], "description": TIMESTAMP["description"]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(max_length: int | None = None, nullable: bool = False) -> Schema:
    schema: Schema = {"type": ["string", "null"] if nullable else "string"}
    if max_length:
        schema["maxLength"] = max_length
    return schema


# Responses list their keys and forbid others with additionalProperties rather than allOf and
# unevaluatedProperties: the same contract, and jsonschema checks it about 40 times faster (a page of ten
# secrets: 12 ms against 0.3 ms), which keeps the suite-wide response check cheap.
def closed(required: list[str], properties: Schema) -> Schema:
    """An object with these properties and no others, ``required`` among them."""
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def page(key: str, item: Schema) -> Schema:
    """A Barbican list: the items under ``key``, the total, and next/previous links where there are more."""
    return {
        "type": "object",
        "required": [key, "total"],
        "additionalProperties": False,
        "properties": {
            key: {"type": "array", "items": item},
            "total": {"type": "integer"},
            "next": {"type": "string", "format": "uri"},
            "previous": {"type": "string", "format": "uri"},
        },
    }


def listed(registered: Schema) -> Schema:
    """A consumer as its list shows it: the registered fields, and Barbican's created, updated and status."""
    return {
        "type": "object",
        "required": [*registered["required"], "created", "updated", "status"],
        "additionalProperties": False,
        "properties": {
            **registered["properties"],
            "created": TIMESTAMP,
            "updated": TIMESTAMP,
            "status": {"const": "ACTIVE"},
        },
    }
