"""Probes for load balancers and Kubernetes: ``/livez`` (the process serves) and ``/readyz`` (it can work,
as services/readiness.py decides). ``/healthcheck`` stays Barbican's plain "OK"."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import ctx, json_response
from donjon.api.schemas import shapes
from donjon.services.readiness import ready


async def livez(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    readiness = ctx(request).readiness
    assert readiness is not None  # set by build_context
    checks = await readiness.checks()
    ok = ready(checks)
    body: dict[str, Any] = {"status": "ready" if ok else "not ready", "checks": checks}
    headers = None if ok else {"Retry-After": "5"}
    return json_response(body, status=200 if ok else 503, headers=headers)


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    "Live": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "checks": {
                "type": "object",
                "properties": {
                    "database": {"enum": ["ok", "unreachable", "timeout"]},
                    "migrations": {"enum": ["ok", "behind", "unknown"]},
                    "keystore": {"enum": ["ok", "failing", "timeout"]},
                    "audit": {"enum": ["ok", "not writable", "disabled", "timeout"]},
                },
            },
        },
    },
}
