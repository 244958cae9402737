"""donjon's versions extension (Barbican's secret representation is left as it is: python-barbicanclient
builds ``Secret(**item)`` from list items and raises on any key it does not know).

``POST /v1/secrets/{id}/versions``  store a new payload as the current version (rotation)
``GET  /v1/secrets/{id}/lifecycle`` max_reads, reads_left, the current and the readable previous versions
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, base_url, ctx, json_response, operation, read_json
from donjon.api.guard import secret_first
from donjon.api.representations import secret_ref
from donjon.api.schemas.lifecycle import new_version
from donjon.timeutil import isoformat


@operation("Secret version creation")
async def create_version(request: Request) -> Response:
    caller = await authenticate(request)
    secret_id = request.path_params["secret_id"]
    # The service's own refusals (no payload yet, max_reads: 409) come after its policy check; guarded anyway.
    async with secret_first(request, caller, "secret:put", "Secret update"):
        new = new_version(await read_json(request), ctx(request).settings.limits.max_secret_bytes)
        version = await run_in_threadpool(ctx(request).versions.rotate, caller, secret_id, new)
    return json_response({"secret_ref": secret_ref(base_url(request), secret_id), "version": version}, status=201)


@operation("Secret lifecycle retrieval")
async def get_lifecycle(request: Request) -> Response:
    caller = await authenticate(request)
    view = await run_in_threadpool(ctx(request).versions.describe, caller, request.path_params["secret_id"])
    versions: list[dict[str, Any]] = [
        {"version": v.version, "created": isoformat(v.created_at), "readable_until": isoformat(v.expires_at)}
        for v in view.previous
    ]
    versions.append({"version": view.version, "created": isoformat(view.version_created), "readable_until": None})
    return json_response(
        {
            "max_reads": view.max_reads,
            "reads_left": view.reads_left,
            "current_version": view.version,
            "versions": versions,
        }
    )
