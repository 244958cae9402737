"""``/v1/quotas`` and ``/v1/project-quotas`` (spec §8)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, ctx, decode_json, json_response, operation, paged_body, paging, read_body
from donjon.api.guard import rule_first
from donjon.api.schemas import shapes
from donjon.api.schemas.quotas import quota_change


@operation("Quotas retrieval")
async def get_quotas(request: Request) -> Response:
    caller = await authenticate(request)
    values = await run_in_threadpool(ctx(request).quota_admin.effective, caller)
    return json_response({"quotas": values})


@operation("Project Quotas retrieval")
async def list_project_quotas(request: Request) -> Response:
    caller = await authenticate(request)
    offset, limit = paging(request)
    rows, total = await run_in_threadpool(ctx(request).quota_admin.list_overrides, caller, offset, limit)
    items = [{"project_id": r.project_id, "project_quotas": r.values} for r in rows]
    # Barbican's links say "project_quotas", which is not a route; these point at the real one.
    return json_response(paged_body(request, "project_quotas", items, total, offset, limit, "project-quotas"))


@operation("Project Quotas retrieval")
async def get_project_quotas(request: Request) -> Response:
    caller = await authenticate(request)
    row = await run_in_threadpool(ctx(request).quota_admin.get_override, caller, request.path_params["project_id"])
    return json_response({"project_quotas": row.values})


@operation("Project Quotas update")
async def put_project_quotas(request: Request) -> Response:
    caller = await authenticate(request)
    # Read within the limit (request.body() would take any size), then parsed unless empty.
    async with rule_first(request, caller, "project_quotas:put", "Project Quotas update"):
        body = await read_body(request, ctx(request).settings.limits.max_request_bytes)
        change = quota_change(decode_json(request, body) if body.strip() else None)
    await run_in_threadpool(ctx(request).quota_admin.set_override, caller, request.path_params["project_id"], change)
    return Response(status_code=204)


@operation("Project Quotas deletion")
async def delete_project_quotas(request: Request) -> Response:
    caller = await authenticate(request)
    await run_in_threadpool(ctx(request).quota_admin.delete_override, caller, request.path_params["project_id"])
    return Response(status_code=204)


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
QUOTA_KEYS = ("secrets", "orders", "containers", "consumers", "cas")
RESPONSES: shapes.Schema = {
    "EffectiveQuotas": {
        "type": "object",
        "required": ["quotas"],
        "additionalProperties": False,
        "properties": {
            "quotas": {
                "type": "object",
                "required": list(QUOTA_KEYS),
                "additionalProperties": False,
                "properties": {k: {"type": "integer", "description": "-1: unlimited"} for k in QUOTA_KEYS},
            }
        },
    },
    "ProjectQuotas": {
        "type": "object",
        "required": ["project_quotas"],
        "additionalProperties": False,
        "properties": {"project_quotas": shapes.ref("Quotas")},
    },
    "ProjectQuotasList": shapes.page(
        "project_quotas",
        {
            "type": "object",
            "required": ["project_id", "project_quotas"],
            "additionalProperties": False,
            "properties": {"project_id": {"type": "string"}, "project_quotas": shapes.ref("Quotas")},
        },
    ),
    "Quotas": {
        "type": "object",
        "properties": {k: {"type": ["integer", "null"]} for k in QUOTA_KEYS},
    },
}
