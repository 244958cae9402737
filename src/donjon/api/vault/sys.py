"""``sys/``: health, seal status, leader and the mount table, as a single, always-unsealed OpenBao node.

donjon has no seal and no unseal keys: it is initialised and unsealed whenever it answers, so ``sys/health``
is the active node's answer and ``sys/seal-status`` a 1-of-1 Shamir seal that is open. Everything else a
Vault server has under ``sys/`` (unseal, policies, other engines, auth methods, audit devices) is Vault's own
``unsupported path`` 404 or ``unsupported operation`` 405.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.responses import Response

from donjon.api.vault import responses, wrapping
from donjon.api.vault.errors import VaultError
from donjon.api.vault.router import PathTable, VaultCall

# The OpenBao release whose API donjon speaks (and whose captures its tests compare with): clients read the
# version to pick features, so it names the API level, not donjon's own version.
API_VERSION = "2.7.2"
CLUSTER_NAME = "donjon"
CLUSTER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "donjon:vault-cluster"))
_COMMIT_DATE = "2026-10-26T20:32:27Z"


def _status_code(call: VaultCall, name: str, default: int) -> int:
    raw = call.request.query_params.get(name)
    if raw is None:
        return default
    try:
        code = int(raw)
    except ValueError:
        raise VaultError(400, f"unable to parse {name} parameter: {raw!r}") from None
    if not 100 <= code <= 999:
        raise VaultError(400, f"invalid {name} parameter: {code}")
    return code


async def _health(call: VaultCall, match: re.Match[str]) -> Response:
    """Unauthenticated; the active, unsealed node's code (``activecode`` overrides it, as Vault)."""
    body = {
        "initialized": True,
        "sealed": False,
        "standby": False,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()),
        "version": API_VERSION,
        "cluster_name": CLUSTER_NAME,
        "cluster_id": CLUSTER_ID,
    }
    return responses.json_body(body, _status_code(call, "activecode", 200))


async def _seal_status(call: VaultCall, match: re.Match[str]) -> Response:
    return responses.json_body(
        {
            "type": "shamir",
            "initialized": True,
            "sealed": False,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "recovery_seal": False,
            "version": API_VERSION,
            "commit_date": _COMMIT_DATE,
            "migration": False,
            "cluster_name": CLUSTER_NAME,
            "cluster_id": CLUSTER_ID,
            "storage_type": "donjon",
        }
    )


async def _leader(call: VaultCall, match: re.Match[str]) -> Response:
    return responses.json_body({"ha_enabled": False})


async def _mounts(call: VaultCall, match: re.Match[str]) -> Response:
    await call.identity()
    return responses.legacy_and_logical(call.request, {path: dict(entry) for path, entry in call.mounts.items()})


async def _mount(call: VaultCall, match: re.Match[str]) -> Response:
    await call.identity()
    entry = call.mounts.get(match["mount"].strip("/") + "/")
    if entry is None:
        raise VaultError(400, f"No secret engine mount at {match['mount'].strip('/')}/")
    return responses.legacy_and_logical(call.request, dict(entry))


def _mount_of(call: VaultCall, path: str) -> tuple[str, dict[str, Any]] | None:
    for prefix in sorted(call.mounts, key=len, reverse=True):
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return prefix, dict(call.mounts[prefix])
    return None


async def _ui_mount(call: VaultCall, match: re.Match[str]) -> Response:
    """Which engine (and KV version) serves a path: every ``bao kv`` command asks this first."""
    await call.identity()
    path = match["path"]
    found = _mount_of(call, path)
    if found is None:
        wanted = path if path.endswith("/") else path + "/"
        raise VaultError(
            403,
            "preflight capability check returned 403, please ensure client's policies grant access to path "
            f'"{wanted}"',
        )
    prefix, entry = found
    data = {**entry, "path": prefix}
    return responses.logical(call.request, dict(sorted(data.items())))


async def _ui_mounts(call: VaultCall, match: re.Match[str]) -> Response:
    await call.identity()
    data = {"auth": {}, "secret": {path: dict(entry) for path, entry in call.mounts.items()}}
    return responses.logical(call.request, data)


async def _unwrap(call: VaultCall, match: re.Match[str]) -> Response:
    """With the wrapping token as the request's token and no body, or any token and ``{"token": ...}``."""
    params = await call.json()
    token, from_body = wrapping.wrapping_token(call.request, params)
    if from_body:
        await call.identity()
    document = await wrapping.unwrap_document(call.request, token)
    answer = dict(document["answer"])
    answer["request_id"] = responses.request_id(call.request)
    return responses.json_body(answer)


async def _wrap(call: VaultCall, match: re.Match[str]) -> Response:
    await call.identity()
    params = await call.json()
    if call.wrap_ttl is None:
        raise VaultError(400, "endpoint requires response wrapping to be used")
    return responses.logical(call.request, params)  # the router wraps it


async def _rewrap(call: VaultCall, match: re.Match[str]) -> Response:
    identity = await call.identity()
    params = await call.json()
    token, _ = wrapping.wrapping_token(call.request, params)
    document = await wrapping.unwrap_document(call.request, token)
    ttl, path = int(document["creation_ttl"]), str(document["creation_path"])
    return await wrapping.wrap(call.request, identity.caller, document["answer"], ttl, path)


async def _lookup(call: VaultCall, match: re.Match[str]) -> Response:
    """No token needed: the wrapping token is given as ``{"token"}``. (Vault's ``GET ?token=`` form is not
    served: a credential in a URL reaches access logs and proxies.)"""
    given = (await call.json()).get("token")
    if not isinstance(given, str) or not given:
        raise VaultError(400, "missing token")
    return responses.logical(call.request, await wrapping.lookup(call.request, given))


ENGINE = PathTable()
ENGINE.route("wrapping/lookup", write=_lookup)
ENGINE.route("wrapping/unwrap", write=_unwrap)
ENGINE.route("wrapping/wrap", write=_wrap)
ENGINE.route("wrapping/rewrap", write=_rewrap)
ENGINE.route("health", read=_health)
ENGINE.route("seal-status", read=_seal_status)
ENGINE.route("leader", read=_leader)
ENGINE.route("mounts", read=_mounts)
ENGINE.route("mounts/(?P<mount>.+)", read=_mount)
ENGINE.route("internal/ui/mounts", read=_ui_mounts)
ENGINE.route("internal/ui/mounts/(?P<path>.+)", read=_ui_mount)

__all__ = ["ENGINE"]
