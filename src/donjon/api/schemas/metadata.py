"""``/v1/secrets/{id}/metadata``: the bulk form and one metadatum; the item rules are Barbican's checks in
code (``InvalidMetadataRequest``, ``InvalidMetadataKey``), kept after the schema with their words."""

from __future__ import annotations

import re
from typing import Any

from donjon.api.schemas._adapter import RequestSchema
from donjon.api.schemas.secrets import has_nul
from donjon.errors import InvalidInput
from donjon.services.commands import Metadatum

_ITEM = {"type": "string", "maxLength": 255}
_META_KEY = re.compile(r"^[A-Za-z0-9_-]*$")

SECRET_METADATA = RequestSchema(
    "Secret Metadata",
    {
        "type": "object",
        "required": ["metadata"],
        "properties": {
            "metadata": {
                "type": "object",
                "description": "URL-safe keys of 1 to 255 characters (stored lower-case, unique regardless of"
                " case), string values of at most 255 characters without NUL",
            }
        },
    },
    wording=lambda _error: "'metadata' is a required property",
)
SECRET_METADATUM = RequestSchema(
    "Secret Metadatum",
    {
        "type": "object",
        "required": ["key", "value"],
        "additionalProperties": False,
        "properties": {
            "key": {"description": "URL-safe (A-Z a-z 0-9 _ -), 1 to 255 characters; stored lower-case"},
            "value": {"description": "a string of at most 255 characters, no NUL"},
        },
    },
    wording=lambda _error: "'key' and 'value' only",
)


def metadatum(key: Any, value: Any) -> Metadatum:
    if not isinstance(key, str) or not isinstance(value, str):
        raise InvalidInput("Invalid Metadata. Keys and Values must be Strings.")
    if not _META_KEY.match(key):
        raise InvalidInput("Invalid Key. Key must be URL safe.")
    if not key:
        raise InvalidInput("Invalid Key. Key must not be empty.")
    # Barbican checks lengths only on the single-key form and lets the bulk form hit a 500 at the DB;
    # both forms are checked here.
    if len(key) > 255 or len(value) > 255:
        raise InvalidInput("Invalid Metadata. Keys and Values must be at most 255 characters.")
    if has_nul(value):
        raise InvalidInput("Invalid Metadata. Values must not contain NUL characters.")
    return Metadatum(key.lower(), value)


def one_metadatum(body: Any) -> Metadatum:
    SECRET_METADATUM.validate(body)
    return metadatum(body["key"], body["value"])


def all_metadata(body: Any) -> list[Metadatum]:
    """The bulk form: keys are case-insensitive (stored lower-case), so two that differ only in case are
    refused instead of one value silently replacing the other (Barbican keeps one of them)."""
    items = [metadatum(k, v) for k, v in SECRET_METADATA.validate(body)["metadata"].items()]
    if len({item.key for item in items}) != len(items):
        raise InvalidInput("Invalid Metadata. Keys must be unique regardless of case.")
    return items
