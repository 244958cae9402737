"""donjon's wrapped hand-off extension.

``POST /v1/secrets/{id}/wrap``      a single-use token that fetches the payload once
``POST /v1/unwrap``                 the payload, for the token in ``X-Wrap-Token`` (no other credential)
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, ctx, decode_json, json_response, operation, read_body
from donjon.api.guard import secret_first
from donjon.api.payload_types import AcceptHeader
from donjon.api.schemas.lifecycle import wrap_ttl
from donjon.timeutil import isoformat

WRAP_TOKEN_HEADER = "x-wrap-token"


@operation("Secret wrapping")
async def wrap_secret(request: Request) -> Response:
    caller = await authenticate(request)
    async with secret_first(request, caller, "secret:decrypt", "Secret wrapping"):
        ttl = await _ttl(request)
    wrapped = await run_in_threadpool(ctx(request).wraps.wrap, caller, request.path_params["secret_id"], ttl)
    return json_response({"wrap_token": wrapped.token, "expires": isoformat(wrapped.expires)}, status=201)


async def _ttl(request: Request) -> int | None:
    """The optional JSON body ``{"ttl": seconds}``; an empty body means the default."""
    raw = await read_body(request, ctx(request).settings.limits.max_request_bytes)
    if not raw.strip():
        return None
    return wrap_ttl(decode_json(request, raw))


@operation("Secret unwrapping")
async def unwrap(request: Request) -> Response:
    # The token is the only credential: no X-Project-Id, no X-Auth-Token. It travels in a header, never in
    # the URL, so access logs and proxies do not record it.
    token = request.headers.get(WRAP_TOKEN_HEADER)
    data, content_type = await run_in_threadpool(
        ctx(request).wraps.unwrap, token, AcceptHeader(request.headers.get("accept"))
    )
    return Response(data, media_type=None, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
