"""``/v1/transport_keys`` (spec §10): Barbican's vestigial transport keys, served as Barbican 23 serves them
(services/transport_keys.py). The list is of refs (URL strings), a single key is Barbican's raw row."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api import common
from donjon.api.guard import rule_first
from donjon.api.schemas import shapes
from donjon.api.schemas.transport_keys import new_transport_key


def transport_key_ref(base: str, key_id: str) -> str:
    return f"{base}/v1/transport_keys/{key_id}"


@common.operation("Transport Key(s) retrieval")
async def list_transport_keys(request: Request) -> Response:
    caller = await common.authenticate(request)
    offset, limit = common.paging(request)
    plugin_name = common.query_text(request, "plugin_name")
    ids, total = await run_in_threadpool(
        common.ctx(request).transport_keys.list_ids, caller, plugin_name, offset, limit
    )
    base = common.base_url(request)
    refs = [transport_key_ref(base, key_id) for key_id in ids]
    extra = [("plugin_name", plugin_name)] if plugin_name else []
    return common.json_response(
        common.paged_body(request, "transport_keys", refs, total, offset, limit, "transport_keys", extra)
    )


@common.operation("Transport Key Creation")
async def create_transport_key(request: Request) -> Response:
    caller = await common.authenticate(request)
    async with rule_first(request, caller, "transport_keys:post", "Transport Key Creation"):
        plugin_name, key = new_transport_key(await common.read_json(request))
    key_id = await run_in_threadpool(common.ctx(request).transport_keys.create, caller, plugin_name, key)
    ref = transport_key_ref(common.base_url(request), key_id)
    return common.json_response({"transport_key_ref": ref}, status=201, headers={"Location": ref})


@common.operation("Transport Key retrieval")
async def get_transport_key(request: Request) -> Response:
    caller = await common.authenticate(request)
    record = await run_in_threadpool(
        common.ctx(request).transport_keys.get, caller, request.path_params["transport_key_id"]
    )
    # Barbican returns its model row as pecan serialises it: datetimes as str(), the soft-delete columns too.
    return common.json_response(
        {
            "id": record.id,
            "created_at": str(record.created_at),
            "updated_at": str(record.updated_at),
            "deleted_at": None,
            "deleted": False,
            "status": "ACTIVE",
            "plugin_name": record.plugin_name,
            "transport_key": record.transport_key,
        }
    )


@common.operation("Transport Key deletion")
async def delete_transport_key(request: Request) -> Response:
    caller = await common.authenticate(request)
    await run_in_threadpool(common.ctx(request).transport_keys.delete, caller, request.path_params["transport_key_id"])
    return Response(status_code=204)


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    "TransportKeyList": shapes.page("transport_keys", {"type": "string", "format": "uri"}),
    # Barbican 23 serves the raw database row.
    "TransportKey": {
        "type": "object",
        "required": [
            "id",
            "created_at",
            "updated_at",
            "deleted_at",
            "deleted",
            "status",
            "plugin_name",
            "transport_key",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "deleted_at": {"type": "null"},
            "deleted": {"const": False},
            "status": {"const": "ACTIVE"},
            "plugin_name": {"type": "string"},
            "transport_key": {"type": "string"},
        },
    },
}
