"""``PUT /v1/project-quotas/{project_id}``: a project's quota overrides."""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import ValidationError

from donjon.api.schemas._adapter import RequestSchema
from donjon.errors import InvalidInput
from donjon.services.commands import QuotaChange
from donjon.services.quotas import RESOURCES

# The range of the database's INTEGER columns: a value past it is refused, not sent (PostgreSQL: a 500).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _wording(error: ValidationError) -> str:
    path = list(error.absolute_path)
    if len(path) == 2:
        key = path[1]
        if error.validator == "type":
            return f"'{key}' must be an integer"
        return f"'{key}' must be from {INT32_MIN} to {INT32_MAX}"
    if path == ["project_quotas"] and error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(RESOURCES)) if isinstance(error.instance, dict) else []
        return f"unknown {unknown}"
    return "'project_quotas' is required"


PROJECT_QUOTAS = RequestSchema(
    "Project Quotas",
    {
        "type": "object",
        "required": ["project_quotas"],
        "additionalProperties": False,
        "properties": {
            "project_quotas": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    resource: {
                        "type": "integer",
                        "minimum": INT32_MIN,
                        "maximum": INT32_MAX,
                        "description": "negative: unlimited, 0: disabled",
                    }
                    for resource in RESOURCES
                },
            }
        },
    },
    wording=_wording,
)


def quota_change(body: Any) -> QuotaChange:
    if body is None or body == {}:
        raise InvalidInput("No data supplied to process.")
    values = PROJECT_QUOTAS.validate(body)["project_quotas"]
    return QuotaChange({key: int(value) for key, value in values.items()})
