"""``/v1/secrets/{id}/consumers``: who uses a secret (spec §4). POST/DELETE answer with the whole secret."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, base_url, ctx, json_response, operation, paged_body, paging
from donjon.api.guard import secret_json
from donjon.api.representations import consumer_full, consumer_location, secret_body
from donjon.api.schemas.consumers import new_consumer


@operation("Secret consumers retrieval")
async def list_consumers(request: Request) -> Response:
    caller = await authenticate(request)
    offset, limit = paging(request)
    secret_id = request.path_params["secret_id"]
    consumers, total = await run_in_threadpool(ctx(request).secrets.list_consumers, caller, secret_id, offset, limit)
    items = [consumer_full(c) for c in consumers]
    path = f"secrets/{secret_id}/consumers"
    return json_response(paged_body(request, "consumers", items, total, offset, limit, path))


@operation("Secret consumer creation")
async def add_consumer(request: Request) -> Response:
    caller, new = await secret_json(request, "secret_consumers:post", "Secret consumer creation", new_consumer)
    view = await run_in_threadpool(ctx(request).secrets.add_consumer, caller, request.path_params["secret_id"], new)
    base = base_url(request)
    location = consumer_location(base, view.secret.id)
    return json_response(secret_body(base, view, with_consumers=True), headers={"Location": location})


@operation("Secret consumer deletion")
async def remove_consumer(request: Request) -> Response:
    caller, gone = await secret_json(request, "secret_consumers:delete", "Secret consumer deletion", new_consumer)
    view = await run_in_threadpool(ctx(request).secrets.remove_consumer, caller, request.path_params["secret_id"], gone)
    return json_response(secret_body(base_url(request), view, with_consumers=True))
