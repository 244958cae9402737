"""``/v1/containers``: a container, one of its secret refs, a container consumer (Barbican 23's
``ContainerValidator``, ``ContainerSecretValidator``, ``ContainerConsumerValidator``)."""

from __future__ import annotations

from typing import Any

from donjon.api.schemas._adapter import RequestSchema, Schema, schema_error
from donjon.api.schemas.secrets import stripped, text
from donjon.errors import InvalidInput
from donjon.services.commands import ContainerSecretRef, NewContainer
from donjon.services.containers import ALLOWED_NAMES, REQUIRED_NAMES, TYPES

_SECRET_REF: Schema = {
    "type": "object",
    "required": ["secret_ref"],
    "properties": {
        "name": text(nullable=True),
        "secret_ref": {"type": "string", "minLength": 1, "format": "uri", "description": "a ref of this server"},
    },
}

CONTAINER = RequestSchema(
    "Container",
    {
        "type": "object",
        "required": ["type"],
        "properties": {
            "name": text(nullable=True),
            "type": {"enum": list(TYPES)},
            "secret_refs": {"type": "array", "items": _SECRET_REF},
        },
    },
)
CONTAINER_SECRET = RequestSchema("Container Secret", _SECRET_REF)
_CONSUMER_NAME = {"type": "string", "minLength": 1, "maxLength": 36}
CONTAINER_CONSUMER = RequestSchema(
    "Container Consumer",
    {
        "type": "object",
        "required": ["name", "URL"],
        "properties": {"name": _CONSUMER_NAME, "URL": {"type": "string", "minLength": 1, "maxLength": 255}},
    },
)


def _secret_id_of(ref: str, base_url: str) -> str:
    """The id at the end of a secret ref, which must point at this server (spec §5.2)."""
    if not ref.startswith(f"{base_url}/"):
        raise InvalidInput(f"Provided field value is not supported: secret_ref {ref!r} is not a ref of this server")
    return ref.rstrip("/").rsplit("/", 1)[-1]


def _ref(item: dict[str, Any], base_url: str, schema: str) -> ContainerSecretRef:
    ref = item["secret_ref"].strip()
    if not ref:
        raise schema_error(schema, "'secret_ref' is a required property", "secret_ref")
    return ContainerSecretRef(stripped(item, "name", schema), _secret_id_of(ref, base_url))


def new_container(body: Any, base_url: str) -> NewContainer:
    """The schema, then: refs of this server, no duplicate names or secrets, the names an rsa or certificate
    container takes."""
    CONTAINER.validate(body)
    name = stripped(body, "name", CONTAINER.name)
    refs = [_ref(item, base_url, CONTAINER.name) for item in body.get("secret_refs", [])]
    names = [r.name or "" for r in refs]
    if len(set(names)) != len(names):
        raise InvalidInput("Duplicate reference names are not allowed.")
    if len({r.secret_id for r in refs}) != len(refs):
        raise InvalidInput("Duplicate secret ids are not allowed.")
    type_ = body["type"]
    if type_ in ALLOWED_NAMES:
        unknown = set(names) - ALLOWED_NAMES[type_]
        missing = REQUIRED_NAMES[type_] - set(names)
        if unknown or missing:
            raise InvalidInput(
                f"Provided object does not match schema 'Container': a {type_} container takes the secret names "
                f"{sorted(ALLOWED_NAMES[type_])} and requires {sorted(REQUIRED_NAMES[type_])}"
            )
    return NewContainer(name, type_, refs)


def container_secret(body: Any, base_url: str) -> ContainerSecretRef:
    # Refused in the words the container's own schema used before it had one: 'Container'.
    return _ref(CONTAINER_SECRET.validate(body), base_url, "Container")


def container_consumer(body: Any) -> tuple[str, str]:
    CONTAINER_CONSUMER.validate(body)
    name = stripped(body, "name", CONTAINER_CONSUMER.name)
    url = stripped(body, "URL", CONTAINER_CONSUMER.name)
    if not name:
        raise schema_error(CONTAINER_CONSUMER.name, "'name' must be 1 to 36 characters", "name")
    if not url:
        raise schema_error(CONTAINER_CONSUMER.name, "'URL' must be 1 to 255 characters", "URL")
    return name, url
