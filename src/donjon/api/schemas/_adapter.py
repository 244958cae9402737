"""The one adapter from a JSON Schema to Barbican's 400: ``jsonschema``, as Barbican itself validates.

Barbican (``barbican/common/validators.py``) calls ``jsonschema.validate`` and turns the error into
``Provided object does not match schema '<Name>': <message>. Invalid property: '<prop>'``, where the message
is jsonschema's own and the property is the second step of the failing schema path (``None`` when the
failure is at the top, as for a missing required property). This adapter does the same.

Each schema is compiled once, twice over: ``jsonschema_rs`` (a compiled validator, 0.3 µs for a secret's body)
decides whether a body matches, and only a body it refuses is walked again by ``jsonschema`` (55 µs) for
Barbican's exact words. Both implement draft 2020-12; the words and, should they ever disagree, the verdict
are jsonschema's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from donjon.errors import InvalidInput

Schema = dict[str, Any]
# A schema's own wording of an error (the whole description), or None for Barbican's.
Wording = Callable[[ValidationError], str | None]


def schema_error(name: str, message: str, prop: str | None = None) -> InvalidInput:
    """Barbican's refusal of a body; without ``prop`` for donjon's own checks that name no property."""
    text = f"Provided object does not match schema '{name}': {message}"
    if prop:
        text += f". Invalid property: '{prop}'"
    return InvalidInput(text)


class RequestSchema:
    """A request body's JSON Schema (``schema``, the object the OpenAPI document shows) and its validator.

    ``secret`` names properties whose value is secret (a payload): an error about one of them never quotes
    the value, where jsonschema's message would (``5 is not of type 'string'``). ``wording`` keeps the texts
    donjon answered before Barbican had a schema for a body (ACLs, quotas).
    """

    def __init__(
        self, name: str, schema: Schema, *, secret: Collection[str] = (), wording: Wording | None = None
    ) -> None:
        Draft202012Validator.check_schema(schema)  # a typo in a schema fails at import, not on a request
        self.name = name
        self.schema = schema
        self._secret = frozenset(secret)
        self._wording = wording
        self._fast = jsonschema_rs.Draft202012Validator(schema)
        self._validator = Draft202012Validator(schema)

    def validate(self, body: Any) -> Any:
        """``body`` itself when it matches, else InvalidInput with the error Barbican would have chosen."""
        if self._fast.is_valid(body):
            return body
        error = best_match(self._validator.iter_errors(body))
        if error is not None:
            raise self._refusal(error)
        return body

    def _refusal(self, error: ValidationError) -> InvalidInput:
        own = self._wording(error) if self._wording is not None else None
        if own is not None:
            return InvalidInput(f"Provided object does not match schema '{self.name}': {own}")
        prop = _invalid_property(error)
        message = error.message
        if any(step in self._secret for step in error.absolute_path):
            message = _redacted(error, prop)
        return InvalidInput(
            f"Provided object does not match schema '{self.name}': {message}. Invalid property: '{prop}'"
        )


def _invalid_property(error: ValidationError) -> str | None:
    """Barbican's: the second step of the schema path (``properties``, then the name). Under a schema's
    ``allOf`` (an order's meta, chosen by its type) that step is an index: the deepest named step of the
    instance path is the property then."""
    path = error.schema_path
    if len(path) > 1 and isinstance(path[1], str):
        return path[1]
    named = [step for step in error.absolute_path if isinstance(step, str)]
    return named[-1] if named and len(path) > 1 else None


def _redacted(error: ValidationError, prop: str | None) -> str:
    quoted = repr(error.instance)
    if quoted in error.message:
        return error.message.replace(quoted, str(prop))
    return f"{prop} is not valid"
