"""The Vault-compatible wire format: Vault's paths, envelope and ``{"errors": [...]}`` bodies over donjon's services.

This package owns Vault's side of the wire only (design.md: one package per wire format). It authenticates
the caller (``auth.py``), shapes answers (``responses.py``) and errors (``errors.py``), and routes
``/v1/<mount>/<path>`` to an *engine* (``router.py``); the engines call the same services as the Barbican
API (secrets, versions, wrap tokens, policy, audit): there is no second storage path and no second crypto.

How an engine plugs in:

1. Write a module here (``kv.py``, ``transit.py``, ...) with a :class:`~donjon.api.vault.router.PathTable`:
   one ``table.route(pattern, read=..., write=..., list=..., delete=..., patch=...)`` per path pattern
   (a regular expression over the path *inside* the mount, named groups welcome), or ``table.writes({pattern:
   handler, ...})`` for the patterns that only ``write`` (an engine's actions). A handler is
   ``async def handler(call: VaultCall, match: re.Match[str]) -> Response``: ``(await call.identity()).caller``
   authenticates (403 ``permission denied`` otherwise), ``await call.json()`` reads the body with Vault's error
   texts, and ``responses.logical(call.request, data)`` / ``responses.no_content()`` answer. Raise
   :class:`VaultError` (or any ``donjon.errors`` exception: ``errors.response_for`` maps it) to fail. The
   router wraps a 200 logical answer itself when ``X-Vault-Wrap-TTL`` asks for it (``wrapping.py``).
2. Add it to :func:`engines` below under its mount path: ``"transit": Mounted(transit.ENGINE,
   responses.mount_entry("transit", "transit_donjon", "", None))`` (the entry is what ``sys/mounts`` and the
   CLI's ``sys/internal/ui/mounts/<path>`` report; ``call.mounts`` hands the table to every engine).

A path matching a pattern but not the operation answers Vault's 405 ``unsupported operation``; a path no
pattern matches, Vault's 404 ``unsupported path``. POST and PUT are the same ``write``; ``LIST`` and
``GET ?list=true`` are ``list``.
"""

from __future__ import annotations

from donjon.api.vault import kv, responses, sys, token, transit
from donjon.api.vault.router import Mounted, VaultRouter
from donjon.config import Settings

__all__ = ["engines", "vault_router"]


def engines(settings: Settings) -> dict[str, Mounted]:
    """Mount path (no slashes) → engine, and its ``sys/mounts`` entry for a secret engine."""
    return {
        "sys": Mounted(sys.ENGINE),
        "auth/token": Mounted(token.ENGINE),
        settings.vault.kv_mount: Mounted(kv.ENGINE, kv.mount_entry()),
        "transit": Mounted(transit.ENGINE, responses.mount_entry("transit", "transit_donjon", "", None)),
    }


def vault_router(settings: Settings) -> VaultRouter | None:
    """The Vault API (its ``routes()``: one per top-level mount segment, none Barbican uses), if enabled."""
    if not settings.vault.enabled:
        return None
    return VaultRouter(engines(settings))
