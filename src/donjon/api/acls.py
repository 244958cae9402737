"""``/v1/{secrets,containers}/{id}/acl`` (spec §7)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, base_url, ctx, json_response, operation, read_json
from donjon.api.guard import container_first, secret_first
from donjon.api.schemas import shapes
from donjon.api.schemas.acls import acl_change


def _target(request: Request) -> tuple[str, str]:
    params = request.path_params
    if "secret_id" in params:
        return "secret", params["secret_id"]
    return "container", params["container_id"]


def _acl_ref(request: Request, kind: str, entity_id: str) -> str:
    return f"{base_url(request)}/v1/{kind}s/{entity_id}/acl"


@operation("ACL retrieval")
async def get_acl(request: Request) -> Response:
    caller = await authenticate(request)
    kind, entity_id = _target(request)
    body = await run_in_threadpool(ctx(request).acls.get, caller, kind, entity_id)
    return json_response(body)


async def _set(request: Request, *, replace: bool) -> Response:
    caller = await authenticate(request)
    kind, entity_id = _target(request)
    kind_first = secret_first if kind == "secret" else container_first
    async with kind_first(request, caller, f"{kind}_acls:put_patch", f"{kind.capitalize()} ACL update"):
        change = acl_change(await read_json(request))
    await run_in_threadpool(lambda: ctx(request).acls.set(caller, kind, entity_id, change, replace=replace))
    return json_response({"acl_ref": _acl_ref(request, kind, entity_id)})


@operation("ACL update")
async def put_acl(request: Request) -> Response:
    return await _set(request, replace=True)


@operation("ACL update")
async def patch_acl(request: Request) -> Response:
    return await _set(request, replace=False)


@operation("ACL deletion")
async def delete_acl(request: Request) -> Response:
    caller = await authenticate(request)
    kind, entity_id = _target(request)
    await run_in_threadpool(ctx(request).acls.delete, caller, kind, entity_id)
    # Barbican answers 200 with a JSON null body, and tempest parses it as JSON.
    return json_response(None)


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    # What GET answers: the stored ACL, or Barbican's default when none is stored.
    "ACL": {
        "type": "object",
        "required": ["read"],
        "additionalProperties": False,
        "properties": {
            "read": {
                "type": "object",
                "required": ["project-access"],
                "additionalProperties": False,
                "properties": {
                    "project-access": {"type": "boolean"},
                    "users": {"type": "array", "items": {"type": "string"}},
                    "created": shapes.TIMESTAMP,
                    "updated": shapes.TIMESTAMP,
                },
            }
        },
    },
}
