"""Dev mode: Barbican's unauthenticated context. Headers name the caller; the server binds loopback only."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from donjon.auth.context import Caller
from donjon.errors import ConfigurationError, InvalidInput


def caller_from_headers(headers: Mapping[str, str]) -> Caller:
    project_id = (headers.get("x-project-id") or "").strip()
    if not project_id:
        raise InvalidInput("Missing X-Project-Id")
    if len(project_id) > 255:
        raise InvalidInput("X-Project-Id is longer than 255 characters")
    user_id = (headers.get("x-user-id") or "").strip() or None
    if user_id is not None and len(user_id) > 255:  # it is stored as creator_id (String(255))
        raise InvalidInput("X-User-Id is longer than 255 characters")
    # As in Barbican's unauthenticated context: roles are a lower-cased comma list, admin when absent.
    raw_roles = headers.get("x-roles")
    roles = tuple(r.strip().lower() for r in raw_roles.split(",") if r.strip()) if raw_roles else ("admin",)
    return Caller(project_id=project_id, user_id=user_id, roles=roles)


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only (``localhost`` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback(host: str) -> None:
    """Dev mode trusts headers, so it must never be reachable from another machine."""
    if is_loopback(host):
        return
    raise ConfigurationError(f"dev auth trusts X-Project-Id and may only listen on a loopback address, not {host!r}")
