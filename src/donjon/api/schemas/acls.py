"""``PUT``/``PATCH /v1/{secrets,containers}/{id}/acl``: the read ACL, exactly as accepted."""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import ValidationError

from donjon.api.schemas._adapter import RequestSchema
from donjon.services.commands import AclChange

# A user id: 1-255 characters, not blank, no NUL (the ids are compared byte for byte, never stripped of
# anything but the surrounding whitespace). Every element is checked (Barbican's schema only looks at the first).
_USER_ID = {"type": "string", "maxLength": 255, "pattern": "^[^\\x00]*[^\\x00\\s][^\\x00]*$"}


def _wording(error: ValidationError) -> str:
    path = [step for step in error.absolute_path if isinstance(step, str)]
    if "users" in path:
        return "'users' must be a list of user ids"
    if "project-access" in path:
        return "'project-access' must be a boolean"
    if path == ["read"]:
        return "'read' takes 'users' and 'project-access'"
    return "only the 'read' operation is supported"


ACL = RequestSchema(
    "ACL",
    {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {
            "read": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "users": {"type": "array", "items": _USER_ID},
                    "project-access": {"type": "boolean"},
                },
            }
        },
    },
    wording=_wording,
)


def acl_change(body: Any) -> AclChange:
    """``{"read": {"users": [...], "project-access": bool}}``; an empty body changes nothing."""
    read = (ACL.validate(body) or {}).get("read", {})
    users = read.get("users")
    return AclChange(read.get("project-access"), [u.strip() for u in users] if users is not None else None)
