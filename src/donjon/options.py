"""Typed plugin options: what keystores, secret stores and SDK backends accept, and the errors a mistake gives.

Each plugin declares its options as a ``PluginOptions`` model (pydantic, unknown keys forbidden) and reads
them with ``parse_options``. Every mistake found is reported at once, in one ``ConfigurationError`` naming the
plugin, the option, where the option was written (the config file and its section, or the environment
variable) and, for an unknown key, the closest valid one::

    pkcs11 keystore: unknown option 'tokn_label' (in /etc/donjon.toml, keystore.options; did you mean 'token_label'?)

Values from ``DONJON_*`` environment variables arrive as strings, so the field types here accept "8" for 8 and
"false", "no", "0" or "off" for false; a bool is never taken for a number.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from donjon.errors import ConfigurationError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def closest(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate most like ``name`` (a likely typo of it), or None if none is close (by difflib's ratio:
    0.6 finds likely intents, 0.8 only near-identical spellings)."""
    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def invalid(message: str) -> PydanticCustomError:
    """An error for a validator to raise: ``message`` is shown as is, after the option's name."""
    return PydanticCustomError("donjon_option", message)


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise invalid("must be true or false")


def _not_a_bool(value: Any) -> Any:
    # pydantic takes True for 1; a flag given where a number belongs is a mistake.
    if isinstance(value, bool):
        raise invalid("must be a number")
    return value


def _flag_or_path(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() not in _TRUE + _FALSE:
        if not value:
            raise invalid("must be true, false or a CA bundle file")
        return value
    try:
        return _flag(value)
    except PydanticCustomError:
        raise invalid("must be true, false or a CA bundle file") from None


# A yes/no option: a TOML boolean, or one of the words above (environment variables are strings).
Flag = Annotated[bool, BeforeValidator(_flag)]
# A whole number (not a bool); bounds are given with Field(ge=..., le=...).
Integer = Annotated[int, BeforeValidator(_not_a_bool)]
# A duration in seconds, more than zero.
Seconds = Annotated[float, BeforeValidator(_not_a_bool), Field(gt=0)]
# TLS verification: true, false, or the path of a CA bundle to verify with.
Verify = Annotated[bool | str, BeforeValidator(_flag_or_path)]
# A string that must not be empty.
Text = Annotated[str, Field(min_length=1)]


class PluginOptions(BaseModel):
    """Base of every plugin's options: immutable, unknown keys refused, numbers accepted for strings."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, hide_input_in_errors=True)


# --------------------------------------------------------------------------------------------- where from


@dataclass(frozen=True)
class Origin:
    """Where a plugin's options were configured: a section of the settings, from a file and/or the environment.

    ``section`` is the path of the options in the settings, e.g. ``("stores", "hsm", "options")``; a list
    index is a number (``("previous_keystores", 0, "options")``).
    """

    section: tuple[str | int, ...]
    file: Path | None
    env_prefix: str = "DONJON_"

    def describe(self) -> str:
        out = ""
        for part in self.section:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    def where(self, key: str) -> str | None:
        """Where ``key`` was written: ``environment variable NAME`` or ``in FILE, SECTION``; None if unknown."""
        variable = self._variable(key)
        if variable is not None:
            return f"environment variable {variable}"
        if self.file is not None and self._in_file(key):
            section = self.describe()
            return f"in {self.file}, {section}" if section else f"in {self.file}"
        return None

    def _variable(self, key: str) -> str | None:
        # Environment variables win over the file. The deepest name first: DONJON_KEYSTORE__OPTIONS__PATH,
        # then the JSON forms of the sections around it (DONJON_KEYSTORE__OPTIONS='{...}', DONJON_KEYSTORE=...).
        present = {name.upper(): name for name in os.environ}
        path = (*self.section, key)
        for depth in range(len(path), 0, -1):
            parts = path[:depth]
            if any(isinstance(part, int) for part in parts):
                continue  # no variable names an item of a list; the list's own (JSON) variable may hold it
            name = (self.env_prefix + "__".join(str(part) for part in parts)).upper()
            if name in present:
                return present[name]
        return None

    def _in_file(self, key: str) -> bool:
        assert self.file is not None
        try:
            node: Any = tomllib.loads(self.file.read_text(encoding="utf-8"))
            for part in self.section:
                node = node[part]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return False
        return isinstance(node, dict) and key in node


class ConfiguredOptions(dict[str, Any]):
    """A plugin's options as the settings hold them, remembering where they were written (for error messages)."""

    def __init__(self, values: Mapping[str, Any], origin: Origin) -> None:
        super().__init__(values)
        self.origin = origin


# --------------------------------------------------------------------------------------------- parsing

M = TypeVar("M", bound=PluginOptions)


def parse_options(model: type[M], options: Mapping[str, Any], what: str) -> M:
    """``options`` as a ``model``; ``ConfigurationError`` (prefixed with ``what``) listing every mistake."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        origin = options.origin if isinstance(options, ConfiguredOptions) else None
        # Unknown keys first: a misspelt key is usually why a required one is missing.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        problems = [_problem(error, model, origin) for error in errors]
        raise ConfigurationError(f"{what}: {'; '.join(problems)}") from None


def _problem(error: ErrorDetails, model: type[PluginOptions], origin: Origin | None) -> str:
    key = ".".join(str(part) for part in error["loc"])
    where = origin.where(str(error["loc"][0])) if origin is not None and error["loc"] else None
    if error["type"] == "extra_forbidden":
        valid = sorted(model.model_fields)
        guess = closest(key, valid)
        hint = f"did you mean {guess!r}?" if guess else f"the options are {', '.join(valid)}"
        return f"unknown option {key!r} ({where + '; ' if where else ''}{hint})"
    complaint = complaint_for(error)
    if not error["loc"]:
        return complaint  # a rule about several options: the message names them
    return f"option {key!r}{f' ({where})' if where else ''} {complaint}"


_COMPLAINTS = {
    "missing": "is required",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a number",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "path_type": "must be a path",
}


def complaint_for(error: ErrorDetails) -> str:
    """What is wrong with a value, in words (echoing it only when it cannot be private)."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "greater_than" and context.get("gt") == 0:
        text = "must be more than 0"
    elif kind == "greater_than":
        text = f"must be more than {context['gt']}"
    elif kind == "greater_than_equal":
        text = f"must be {context['ge']} or more"
    elif kind == "less_than_equal":
        text = f"must be {context['le']} or less"
    elif kind == "literal_error":
        text = f"must be {context['expected']}"
    elif kind == "value_error":
        text = str(context.get("error", error["msg"]))
    else:
        text = _COMPLAINTS.get(kind, error["msg"])
    value = error.get("input")
    # Only numbers and flags are echoed: a string option may hold something private (a URL with a password).
    if kind not in ("missing", "extra_forbidden") and _shown(value):
        text += f", not {value!r}"
    return text


def _shown(value: Any) -> bool:
    if isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and len(value) <= 12 and value.replace(".", "", 1).lstrip("-").isalnum()
