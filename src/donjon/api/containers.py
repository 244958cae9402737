"""``/v1/containers`` (spec §5): containers, their secrets and consumers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import (
    authenticate,
    base_url,
    ctx,
    json_response,
    operation,
    paged_body,
    paging,
    query_text,
    read_json,
)
from donjon.api.guard import container_json, rule_first
from donjon.api.representations import consumer_location, secret_ref
from donjon.api.schemas import shapes
from donjon.api.schemas.containers import container_consumer, container_secret, new_container
from donjon.auth import Caller
from donjon.services.containers import ContainerView
from donjon.timeutil import isoformat


def container_ref(base: str, container_id: str) -> str:
    return f"{base}/v1/containers/{container_id}"


def container_body(base: str, view: ContainerView) -> dict[str, Any]:
    c = view.container
    return {
        "container_ref": container_ref(base, c.id),
        "name": c.name,
        "type": c.type,
        "status": "ACTIVE",
        "created": isoformat(c.created_at),
        "updated": isoformat(c.updated_at),
        "creator_id": c.creator_id,
        "secret_refs": [{"name": s.name, "secret_ref": secret_ref(base, s.secret_id)} for s in view.secrets],
        "consumers": [{"name": k.name, "URL": k.url} for k in view.consumers],
    }


def _created(ref: str) -> Response:
    """Barbican's 201 to a POST that made or filled a container: the container's ref, also as Location."""
    return json_response({"container_ref": ref}, status=201, headers={"Location": ref})


@operation("Container creation")
async def create_container(request: Request) -> Response:
    caller = await authenticate(request)
    base = base_url(request)
    async with rule_first(request, caller, "containers:post", "Container creation"):
        new = new_container(await read_json(request), base)
    container_id = await run_in_threadpool(ctx(request).containers.create, caller, new)
    return _created(container_ref(base, container_id))


@operation("Containers(s) retrieval")
async def list_containers(request: Request) -> Response:
    caller = await authenticate(request)
    offset, limit = paging(request)
    params = request.query_params
    name, type_ = query_text(request, "name"), query_text(request, "type")
    views, total = await run_in_threadpool(
        lambda: ctx(request).containers.list_containers(caller, name=name, type_=type_, offset=offset, limit=limit)
    )
    base = base_url(request)
    extra = [(k, v) for k, v in params.multi_items() if k in ("name", "type")]
    body = paged_body(
        request, "containers", [container_body(base, v) for v in views], total, offset, limit, "containers", extra
    )
    return json_response(body)


@operation("Container retrieval")
async def get_container(request: Request) -> Response:
    caller = await authenticate(request)
    view = await run_in_threadpool(ctx(request).containers.get, caller, request.path_params["container_id"])
    return json_response(container_body(base_url(request), view))


@operation("Container deletion")
async def delete_container(request: Request) -> Response:
    caller = await authenticate(request)
    await run_in_threadpool(ctx(request).containers.delete, caller, request.path_params["container_id"])
    return Response(status_code=204)


@operation("Container Secret creation")
async def add_secret(request: Request) -> Response:
    base = base_url(request)
    caller, ref = await container_json(
        request, "container_secret:post", "Container Secret creation", partial(container_secret, base_url=base)
    )
    container_id = request.path_params["container_id"]
    await run_in_threadpool(ctx(request).containers.add_secret, caller, container_id, ref)
    return _created(container_ref(base, container_id))


@operation("Container Secret deletion")
async def remove_secret(request: Request) -> Response:
    parse = partial(container_secret, base_url=base_url(request))
    caller, ref = await container_json(request, "container_secret:delete", "Container Secret deletion", parse)
    await run_in_threadpool(ctx(request).containers.remove_secret, caller, request.path_params["container_id"], ref)
    return Response(status_code=204)


@operation("Container consumers retrieval")
async def list_consumers(request: Request) -> Response:
    caller = await authenticate(request)
    offset, limit = paging(request)
    container_id = request.path_params["container_id"]
    consumers, total = await run_in_threadpool(
        ctx(request).containers.list_consumers, caller, container_id, offset, limit
    )
    items = [
        {
            "name": c.name,
            "URL": c.url,
            "created": isoformat(c.created_at),
            "updated": isoformat(c.updated_at),
            "status": "ACTIVE",
        }
        for c in consumers
    ]
    return json_response(
        paged_body(request, "consumers", items, total, offset, limit, f"containers/{container_id}/consumers")
    )


async def _change_consumer(
    request: Request, rule: str, operation: str, change: Callable[[Caller, str, str, str], ContainerView]
) -> ContainerView:
    """Registering and removing a consumer read the same body and answer with the container."""
    caller, (name, url) = await container_json(request, rule, operation, container_consumer)
    return await run_in_threadpool(change, caller, request.path_params["container_id"], name, url)


@operation("Container consumer creation")
async def add_consumer(request: Request) -> Response:
    containers = ctx(request).containers
    view = await _change_consumer(
        request, "container_consumers:post", "Container consumer creation", containers.add_consumer
    )
    base = base_url(request)
    location = consumer_location(base, view.container.id)
    return json_response(container_body(base, view), headers={"Location": location})


@operation("Container consumer deletion")
async def remove_consumer(request: Request) -> Response:
    containers = ctx(request).containers
    view = await _change_consumer(
        request, "container_consumers:delete", "Container consumer deletion", containers.remove_consumer
    )
    return json_response(container_body(base_url(request), view))


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
CONTAINER_CONSUMER: shapes.Schema = {
    "type": "object",
    "required": ["name", "URL"],
    "properties": {"name": shapes.string(36), "URL": shapes.string(255)},
}
RESPONSES: shapes.Schema = {
    "ContainerConsumerList": shapes.page("consumers", shapes.listed(CONTAINER_CONSUMER)),
    # A container's secret as its answers show it.
    "ContainerSecretRef": {
        "type": "object",
        "required": ["name", "secret_ref"],
        "additionalProperties": False,
        "properties": {"name": shapes.string(255, nullable=True), "secret_ref": {"type": "string", "format": "uri"}},
    },
    "ContainerConsumer": CONTAINER_CONSUMER,
    "Container": {
        "type": "object",
        "required": ["container_ref", "name", "type", "status", "created", "updated", "creator_id", "secret_refs"],
        "additionalProperties": False,
        "properties": {
            "container_ref": {"type": "string", "format": "uri"},
            "name": shapes.string(nullable=True),
            "type": {"enum": ["generic", "rsa", "certificate", "ec"]},
            "status": {"const": "ACTIVE"},
            "created": shapes.TIMESTAMP,
            "updated": shapes.TIMESTAMP,
            "creator_id": shapes.string(nullable=True),
            "secret_refs": {"type": "array", "items": shapes.ref("ContainerSecretRef")},
            "consumers": {"type": "array", "items": shapes.ref("ContainerConsumer")},
        },
    },
    "ContainerList": shapes.page("containers", shapes.ref("Container")),
}
