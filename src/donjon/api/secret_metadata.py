"""``/v1/secrets/{id}/metadata[/{key}]``: secret user metadata (spec §3)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, base_url, ctx, json_response, operation, read_json
from donjon.api.guard import secret_first, secret_json
from donjon.api.representations import secret_ref
from donjon.api.schemas.metadata import all_metadata, one_metadatum
from donjon.errors import Conflict


@operation("Secret metadata retrieval")
async def get_all(request: Request) -> Response:
    caller = await authenticate(request)
    items = await run_in_threadpool(ctx(request).secrets.get_metadata, caller, request.path_params["secret_id"])
    return json_response({"metadata": items})


@operation("Secret metadata update")
async def replace_all(request: Request) -> Response:
    caller, items = await secret_json(request, "secret_meta:put", "Secret metadata update", all_metadata)
    secret_id = request.path_params["secret_id"]
    await run_in_threadpool(ctx(request).secrets.replace_metadata, caller, secret_id, items)
    return json_response({"metadata_ref": f"{secret_ref(base_url(request), secret_id)}/metadata"}, status=201)


@operation("Secret metadatum creation")
async def add_one(request: Request) -> Response:
    caller, item = await secret_json(request, "secret_meta:post", "Secret metadatum creation", one_metadatum)
    secret_id = request.path_params["secret_id"]
    await run_in_threadpool(ctx(request).secrets.add_metadatum, caller, secret_id, item)
    location = f"{secret_ref(base_url(request), secret_id)}/metadata/{item.key}"
    return json_response(asdict(item), status=201, headers={"Location": location})


@operation("Secret metadatum retrieval")
async def get_one(request: Request) -> Response:
    caller = await authenticate(request)
    key = request.path_params["key"]
    value = await run_in_threadpool(ctx(request).secrets.get_metadatum, caller, request.path_params["secret_id"], key)
    return json_response({"key": key.lower(), "value": value})


@operation("Secret metadatum update")
async def update_one(request: Request) -> Response:
    caller = await authenticate(request)
    async with secret_first(request, caller, "secret_meta:put", "Secret metadatum update"):
        item = one_metadatum(await read_json(request))
        if item.key != request.path_params["key"].lower():
            raise Conflict("Key in request data does not match key in the request url.")
    await run_in_threadpool(ctx(request).secrets.update_metadatum, caller, request.path_params["secret_id"], item)
    return json_response(asdict(item))


@operation("Secret metadatum removal")
async def delete_one(request: Request) -> Response:
    caller = await authenticate(request)
    await run_in_threadpool(
        ctx(request).secrets.delete_metadatum, caller, request.path_params["secret_id"], request.path_params["key"]
    )
    return Response(status_code=204)


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: dict[str, Any] = {
    "Metadata": {
        "type": "object",
        "required": ["metadata"],
        "additionalProperties": False,
        "properties": {"metadata": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 255}}},
    },
    "Metadatum": {
        "type": "object",
        "required": ["key", "value"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            "value": {"type": "string", "maxLength": 255},
        },
    },
}
