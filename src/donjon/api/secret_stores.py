"""``/v1/secret-stores`` (spec §9): the configured stores and a project's preferred one."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, base_url, ctx, json_response, operation
from donjon.api.schemas import shapes
from donjon.errors import MethodNotAllowed
from donjon.services.stores import StoreInfo, StoreRegistry
from donjon.timeutil import isoformat


def store_body(base: str, info: StoreInfo, registry: StoreRegistry) -> dict[str, Any]:
    started = isoformat(registry.started)
    return {
        "secret_store_ref": f"{base}/v1/secret-stores/{info.id}",
        "name": info.name,
        "secret_store_plugin": info.plugin,
        "crypto_plugin": info.crypto_plugin,
        "global_default": info.global_default,
        "status": "ACTIVE",
        "created": started,
        "updated": started,
    }


@operation("Secret store retrieval")
async def secret_stores(request: Request) -> Response:
    caller = await authenticate(request)
    service = ctx(request).secret_stores
    base = base_url(request)
    parts = [p for p in request.path_params.get("path", "").split("/") if p]
    method = request.method

    def one(info: StoreInfo) -> Response:
        return json_response(store_body(base, info, service.registry))

    if not parts and method == "GET":
        infos = await run_in_threadpool(service.list, caller)
        return json_response({"secret_stores": [store_body(base, i, service.registry) for i in infos]})
    if parts == ["global-default"] and method == "GET":
        return one(await run_in_threadpool(service.global_default, caller))
    if parts == ["preferred"] and method == "GET":
        return one(await run_in_threadpool(service.preferred, caller))
    if len(parts) == 1 and method == "GET":
        return one(await run_in_threadpool(service.get, caller, parts[0]))
    if len(parts) == 2 and parts[1] == "preferred" and method == "POST":
        await run_in_threadpool(service.set_preferred, caller, parts[0])
        return Response(status_code=204)
    if len(parts) == 2 and parts[1] == "preferred" and method == "DELETE":
        # Barbican removes the project's preference whatever store the path names.
        await run_in_threadpool(service.clear_preferred, caller)
        return Response(status_code=204)
    if not service.registry.multiple:
        await run_in_threadpool(service.list, caller)  # the policy check, then Barbican's 404
    raise MethodNotAllowed("The method is not allowed on this secret store resource.")


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    "SecretStore": {
        "type": "object",
        "required": [
            "secret_store_ref",
            "name",
            "secret_store_plugin",
            "crypto_plugin",
            "global_default",
            "status",
            "created",
            "updated",
        ],
        "additionalProperties": False,
        "properties": {
            "secret_store_ref": {"type": "string", "format": "uri"},
            "name": {"type": "string"},
            "secret_store_plugin": {"type": "string"},
            "crypto_plugin": shapes.string(nullable=True),
            "global_default": {"type": "boolean"},
            "status": {"const": "ACTIVE"},
            "created": shapes.TIMESTAMP,
            "updated": shapes.TIMESTAMP,
        },
    },
    "SecretStoreList": {
        "type": "object",
        "required": ["secret_stores"],
        "additionalProperties": False,
        "properties": {"secret_stores": {"type": "array", "items": shapes.ref("SecretStore")}},
    },
}
