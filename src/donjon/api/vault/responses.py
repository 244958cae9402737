"""Vault's response envelope, byte-compatible with OpenBao 2.7.2 (key order included).

Every "logical" answer carries ``request_id, lease_id, renewable, lease_duration, data, wrap_info,
warnings, auth`` in that order; a write that returns nothing is a 204 with an empty body (still
``application/json``, as OpenBao). Vault marks every answer ``Cache-Control: no-store``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

HEADERS = {"Cache-Control": "no-store"}


def json_body(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=HEADERS)


def request_id(request: Request) -> str:
    """The request's id as a bare UUID (OpenStackMiddleware's ``req-<uuid>``, so logs and audit correlate)."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid.removeprefix("req-") if isinstance(rid, str) else str(uuid.uuid4())


def envelope(
    request: Request,
    data: Any,
    *,
    warnings: list[str] | None = None,
    auth: Mapping[str, Any] | None = None,
    wrap_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id(request),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": wrap_info,
        "warnings": warnings,
        "auth": auth,
    }


def logical(
    request: Request,
    data: Any,
    *,
    status: int = 200,
    warnings: list[str] | None = None,
    auth: Mapping[str, Any] | None = None,
) -> Response:
    """A logical answer: ``data`` (or ``auth``) in Vault's envelope."""
    return json_body(envelope(request, data, warnings=warnings, auth=auth), status)


def legacy_and_logical(request: Request, data: Mapping[str, Any]) -> Response:
    """``sys/`` answers that carry ``data``'s keys at the top level too (older clients read them there)."""
    return json_body({**data, **envelope(request, dict(data))})


def no_content() -> Response:
    return Response(b"", status_code=204, media_type="application/json", headers=HEADERS)


def mount_entry(kind: str, accessor: str, description: str, options: Mapping[str, str] | None) -> dict[str, Any]:
    """A mount as ``sys/mounts`` describes it (OpenBao 2.7.2's keys, in its order)."""
    return {
        "accessor": accessor,
        "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
        "deprecation_status": "supported",
        "description": description,
        "external_entropy_access": False,
        "local": False,
        "options": dict(options) if options is not None else None,
        "plugin_version": "",
        "running_plugin_version": "v2.7.2+builtin.bao",
        "running_sha256": "",
        "seal_wrap": False,
        "type": kind,
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"donjon:vault-mount:{accessor}")),
    }
