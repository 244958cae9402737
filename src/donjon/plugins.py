"""Backends by name, each imported on first use: a backend's library is only needed if it is configured.

The keystores (donjon.keystores) and the external secret stores (donjon.stores) are both such registries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from donjon.errors import ConfigurationError

T = TypeVar("T")

# Builds a backend from its configured options.
Factory = Callable[[Mapping[str, Any]], T]


def lazy(module: str, class_name: str) -> Factory[Any]:
    """A factory calling ``module.class_name.from_options``, importing the module only when first called."""

    def factory(options: Mapping[str, Any]) -> Any:
        return getattr(importlib.import_module(module), class_name).from_options(options)

    return factory


def open_backend(registry: Mapping[str, Factory[T]], type_: str, options: Mapping[str, Any], what: str) -> T:
    """The backend ``type_`` of ``registry`` built from ``options``; an unknown type is a configuration error
    naming the known ones (``what`` names the kind and may add a note after them)."""
    try:
        factory = registry[type_]
    except KeyError:
        kind, _, note = what.partition(";")
        known = ", ".join(sorted(registry))
        raise ConfigurationError(
            f"unknown {kind} type {type_!r} (known: {known}{';' + note if note else ''})"
        ) from None
    return factory(options)
