"""Choosing a backend by configuration: ``type`` plus that backend's own options.

>>> open_key_manager({"type": "vault", "url": "http://127.0.0.1:8200", "token_file": "~/.vault-token"})
>>> open_key_manager({"type": "donjon", "options": {"url": "https://kms.example", "token": "..."}})

Backends are imported only when chosen, so the ``donjon`` backend needs only httpx, and ``vault`` only hvac.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

from donjon.client._errors import ConfigError
from donjon.client._manager import KeyManager

# type -> "module:class"; each class has ``from_options(options) -> KeyManager`` and validates its options.
BACKENDS: dict[str, str] = {
    "donjon": "donjon.client._donjon:DonjonKeyManager",
    "barbican": "donjon.client._donjon:DonjonKeyManager",  # the same HTTP API
    "vault": "donjon.client._vault:VaultKeyManager",
    "kmip": "donjon.client._kmip:KmipKeyManager",
    "pkcs11": "donjon.client._pkcs11:Pkcs11KeyManager",
}
EXTRAS = {"donjon": "client", "barbican": "client", "vault": "vault", "kmip": "kmip", "pkcs11": "pkcs11"}


def open_key_manager(config: Mapping[str, Any]) -> KeyManager:
    """The key manager ``config`` describes: ``{"type": ..., "options": {...}}`` or the options inline."""
    if not isinstance(config, Mapping) or "type" not in config:
        raise ConfigError(f"a key manager configuration needs a 'type' ({', '.join(sorted(BACKENDS))})")
    kind = str(config["type"])
    if kind not in BACKENDS:
        raise ConfigError(f"unknown key manager type {kind!r}; one of {', '.join(sorted(BACKENDS))}")
    if "options" in config:
        extra = set(config) - {"type", "options"}
        if extra:
            raise ConfigError(f"with 'options', nothing else may be given (got {sorted(extra)})")
        options = dict(config["options"] or {})
    else:
        options = {k: v for k, v in config.items() if k != "type"}
    module_name, _, class_name = BACKENDS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {kind} backend needs {exc.name or 'a missing module'}: pip install 'donjon[{EXTRAS[kind]}]'"
        ) from exc
    return cast(KeyManager, getattr(module, class_name).from_options(options))
