"""``/v1/orders`` (spec §6): queue a generation (202, once done if that is quick) and follow it."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api import common
from donjon.api.containers import container_ref
from donjon.api.guard import rule_first
from donjon.api.representations import secret_ref
from donjon.api.schemas import shapes
from donjon.api.schemas.orders import new_order
from donjon.errors import MethodNotAllowed
from donjon.services.orders import ACTIVE, OrderRecord
from donjon.timeutil import isoformat


def order_ref(base: str, order_id: str) -> str:
    return f"{base}/v1/orders/{order_id}"


def order_body(base: str, order: OrderRecord) -> dict[str, Any]:
    # Only keys that have values, and the meta exactly as stored: python-barbicanclient builds
    # KeyOrder(**body, **meta) and raises on any key it does not know.
    body: dict[str, Any] = {
        "order_ref": order_ref(base, order.id),
        "type": order.type,
        "status": order.status,
        "created": isoformat(order.created_at),
        "updated": isoformat(order.updated_at),
        "meta": order.meta,
        "creator_id": order.creator_id,
    }
    if order.secret_id:
        body["secret_ref"] = secret_ref(base, order.secret_id)
    if order.container_id:
        body["container_ref"] = container_ref(base, order.container_id)
    if order.status == ACTIVE:
        body["sub_status"] = "Unknown"
        body["sub_status_message"] = "Unknown"
    if order.error_status_code:
        body["error_status_code"] = order.error_status_code
        body["error_reason"] = order.error_reason
    return {k: v for k, v in body.items() if v is not None}


@common.operation("Order creation")
async def create_order(request: Request) -> Response:
    caller = await common.authenticate(request)
    context = common.ctx(request)
    async with rule_first(request, caller, "orders:post", "Order creation"):
        order = new_order(await common.read_json(request), now=context.clock.now())
    order_id = await run_in_threadpool(context.orders.create, caller, order)
    worker = context.order_worker
    if worker is not None:
        worker.wake()
        # Barbican runs the order inside the request and its clients GET it once expecting it done: wait a
        # little for this process's worker (the order stays claimed in the database). The answer is the same
        # 202 either way; past the bound the order is simply still PENDING.
        await worker.wait_finished(order_id, context.settings.orders.answer_within_seconds)
    ref = order_ref(common.base_url(request), order_id)
    return common.json_response({"order_ref": ref}, status=202, headers={"Location": ref})


@common.operation("Order(s) retrieval")
async def list_orders(request: Request) -> Response:
    caller = await common.authenticate(request)
    offset, limit = common.paging(request)
    params = request.query_params
    type_, meta_like = params.get("type"), common.query_text(request, "meta")
    records, total = await run_in_threadpool(
        lambda: common.ctx(request).orders.list_orders(
            caller, type_=type_, meta_like=meta_like, offset=offset, limit=limit
        )
    )
    base = common.base_url(request)
    extra = [(k, v) for k, v in params.multi_items() if k in ("type", "meta")]
    return common.json_response(
        common.paged_body(
            request, "orders", [order_body(base, o) for o in records], total, offset, limit, "orders", extra
        )
    )


@common.operation("Order retrieval")
async def get_order(request: Request) -> Response:
    caller = await common.authenticate(request)
    order = await run_in_threadpool(common.ctx(request).orders.get, caller, request.path_params["order_id"])
    return common.json_response(order_body(common.base_url(request), order))


@common.operation("Order deletion")
async def delete_order(request: Request) -> Response:
    caller = await common.authenticate(request)
    await run_in_threadpool(common.ctx(request).orders.delete, caller, request.path_params["order_id"])
    return Response(status_code=204)


@common.operation("Order update")
async def put_orders(request: Request) -> Response:
    caller = await common.authenticate(request)
    common.ctx(request).policy.enforce("orders:put", caller, operation="Order update")
    raise MethodNotAllowed("Order update is not supported.")


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    "Order": {
        "type": "object",
        "required": ["order_ref", "type", "status", "meta", "created", "updated"],
        "additionalProperties": False,
        "properties": {
            "order_ref": {"type": "string", "format": "uri"},
            "type": {"type": "string"},
            "status": {"enum": ["PENDING", "ACTIVE", "ERROR"]},
            "meta": {"type": "object"},
            "secret_ref": {"type": "string", "format": "uri"},
            "container_ref": {"type": "string", "format": "uri"},
            "error_status_code": {"type": "string"},
            "error_reason": {"type": "string"},
            "creator_id": shapes.string(nullable=True),
            "sub_status": {"type": "string", "description": "Barbican's; Unknown, once ACTIVE"},
            "sub_status_message": {"type": "string"},
            "created": shapes.TIMESTAMP,
            "updated": shapes.TIMESTAMP,
        },
    },
    "OrderList": shapes.page("orders", shapes.ref("Order")),
}
