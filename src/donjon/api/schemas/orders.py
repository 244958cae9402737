"""``POST /v1/orders``: an order's type and its meta, one schema per type (key, asymmetric, password)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from donjon.api.schemas._adapter import RequestSchema, Schema, schema_error
from donjon.api.schemas.secrets import SECRET_ATTRIBUTES, expiration, secret_attributes, stripped, text
from donjon.errors import InvalidInput
from donjon.services import payloads
from donjon.services.commands import NewOrder
from donjon.services.orders import PASSWORD_CLASSES, TYPES, check_password_policy
from donjon.timeutil import isoformat

# key and asymmetric: the secret attributes, required algorithm and bit length, never a payload.
_KEY_META: Schema = {
    "type": "object",
    "required": ["algorithm", "bit_length"],
    "properties": {
        **SECRET_ATTRIBUTES,
        "payload_content_type": {**text(nullable=True), "description": "the generated secret's (default binary)"},
        "payload": {"not": {}, "description": "refused: an order generates its payload"},
    },
}
# asymmetric: the private key's passphrase; Barbican reads "passphrase", python-barbicanclient sends "pass_phrase".
_ASYMMETRIC_META: Schema = {
    **_KEY_META,
    "properties": {
        **_KEY_META["properties"],
        "passphrase": {"type": "string", "minLength": 1},
        "pass_phrase": {"type": "string", "minLength": 1},
    },
}
# password (donjon extension): a generated passphrase from a character policy.
_PASSWORD_META: Schema = {
    "type": "object",
    "properties": {
        "name": text(nullable=True),
        "length": {"type": "integer", "minimum": 8, "maximum": 4096, "default": 32},
        "character_classes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": list(PASSWORD_CLASSES)},
            "default": list(PASSWORD_CLASSES),
        },
        "exclude": {"type": "string", "maxLength": 255, "default": ""},
        "expiration": SECRET_ATTRIBUTES["expiration"],
    },
}


def _meta_of(order_type: str, meta: Schema) -> Schema:
    return {"if": {"properties": {"type": {"const": order_type}}}, "then": {"properties": {"meta": meta}}}


ORDER = RequestSchema(
    "Order",
    {
        "type": "object",
        "required": ["type", "meta"],
        "properties": {"type": {"enum": list(TYPES)}, "meta": {"type": "object"}},
        "allOf": [
            _meta_of("key", _KEY_META),
            _meta_of("asymmetric", _ASYMMETRIC_META),
            _meta_of("password", _PASSWORD_META),
        ],
    },
    secret={"passphrase", "pass_phrase", "payload"},
    wording=lambda error: (
        "'payload' is not allowed in an order. Invalid property: 'payload'" if error.validator == "not" else None
    ),
)


def new_order(body: Any, *, now: datetime) -> NewOrder:
    """The schema, then what it cannot say: dates, NUL characters, multiples of 8, content types."""
    meta = ORDER.validate(body)["meta"]
    if body["type"] == "password":
        return NewOrder("password", _password_meta(meta, now))
    attrs = secret_attributes(meta, ORDER.name, now=now)
    if not attrs["algorithm"]:
        raise schema_error(ORDER.name, "'algorithm' is a required property", "algorithm")
    if attrs["bit_length"] % 8:
        raise InvalidInput("Provided field value is not supported: bit_length must be a multiple of 8")
    content_type = stripped(meta, "payload_content_type", ORDER.name)
    if content_type:
        payloads.normalize_content_type(content_type, "Secret' within 'Order")
    stored: dict[str, Any] = {
        "name": attrs["name"],
        "algorithm": attrs["algorithm"],
        "bit_length": attrs["bit_length"],
        "expiration": isoformat(attrs["expiration"]),
        "payload_content_type": content_type or payloads.OCTET_STREAM,
    }
    if attrs["mode"]:
        stored["mode"] = attrs["mode"]
    passphrase = None
    if body["type"] == "asymmetric":
        for key in ("passphrase", "pass_phrase"):
            if meta.get(key) is not None:
                passphrase = meta[key]
    return NewOrder(body["type"], stored, passphrase)


def _password_meta(meta: dict[str, Any], now: datetime) -> dict[str, Any]:
    length = int(meta.get("length", 32))
    classes = meta.get("character_classes", list(PASSWORD_CLASSES))
    exclude = meta.get("exclude", "")
    check_password_policy(length, tuple(classes), exclude)
    return {
        "name": stripped(meta, "name", ORDER.name),
        "length": length,
        "character_classes": classes,
        "exclude": exclude,
        "expiration": isoformat(expiration(meta, ORDER.name, now=now)),
    }
