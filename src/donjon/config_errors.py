"""Settings errors in words: each mistake names the setting, where it was written (the config file or the
environment variable) and, for an unknown key, the closest valid one, instead of pydantic's dump::

    invalid configuration: unknown setting 'keystor' (in /etc/donjon.toml; did you mean 'keystore'?)
    invalid configuration: setting 'port' (environment variable DONJON_PORT) must be a whole number

Values are echoed only when they cannot be private (short numbers and words; never a URL or a password),
as plugin options are (donjon/options.py).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from donjon.options import Origin, closest, complaint_for


def describe_settings_error(exc: ValidationError, config_file: str | None) -> str:
    """One line for every mistake in ``exc`` (raised by ``Settings()``), unknown keys first."""
    from donjon.config import Settings

    file = Path(config_file) if config_file else None
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    return "invalid configuration: " + "; ".join(_problem(e, Settings, file) for e in errors)


def _problem(error: ErrorDetails, root: type[BaseModel], file: Path | None) -> str:
    loc = tuple(error["loc"])
    if not loc:
        return complaint_for(error)
    section, key = loc[:-1], str(loc[-1])
    origin = Origin(tuple(section), file)
    name = origin.describe() + ("." if section else "") + key
    where = origin.where(key)
    if error["type"] == "extra_forbidden":
        valid = _fields_at(root, section)
        guess = closest(key, valid) if valid else None
        hint = f"did you mean {guess!r}?" if guess else (f"the settings here are {', '.join(valid)}" if valid else "")
        inside = "; ".join(part for part in (where, hint) if part)
        return f"unknown setting {name!r}" + (f" ({inside})" if inside else "")
    return f"setting {name!r}{f' ({where})' if where else ''} {complaint_for(error)}"


def _fields_at(model: type[BaseModel], section: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the table at ``section`` of the settings ([] when it is not a model's table)."""
    annotation: Any = model
    for part in section:
        # dict[str, X] and list[X]: this part is their key or index, X is one level further down.
        if typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
            continue
        current = _model_of(annotation)
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
    found = _model_of(annotation)
    return sorted(found.model_fields) if found is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None
