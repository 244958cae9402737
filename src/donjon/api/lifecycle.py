"""donjon's lifecycle extensions: versions, limited secrets' state, wrapped hand-off.

``POST /v1/secrets/{id}/versions``  store a new payload as the current version (rotation)
``GET  /v1/secrets/{id}/lifecycle`` max_reads, reads_left, the current and the readable previous versions
``POST /v1/secrets/{id}/wrap``      a single-use token that fetches the payload once
``POST /v1/unwrap``                 the payload, for the token in ``X-Wrap-Token`` (no other credential)

Barbican's secret representation is left as it is: python-barbicanclient builds ``Secret(**item)`` from
list items and raises on any key it does not know.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, base_url, ctx, json_response, operation, read_body, read_json
from donjon.api.guard import secret_first
from donjon.api.representations import secret_ref
from donjon.errors import InvalidInput, UnsupportedMediaType
from donjon.services.lifecycle import LifecycleService
from donjon.timeutil import isoformat

WRAP_TOKEN_HEADER = "x-wrap-token"


def _service(request: Request) -> LifecycleService:
    service = ctx(request).lifecycle
    assert service is not None
    return service


@operation("Secret version creation")
async def create_version(request: Request) -> Response:
    caller = await authenticate(request)
    secret_id = request.path_params["secret_id"]
    # The service validates the new payload before its policy check: guard the whole call.
    async with secret_first(request, caller, "secret:put", "Secret update"):
        body = await read_json(request)
        version = await run_in_threadpool(_service(request).rotate, caller, secret_id, body)
    return json_response({"secret_ref": secret_ref(base_url(request), secret_id), "version": version}, status=201)


@operation("Secret lifecycle retrieval")
async def get_lifecycle(request: Request) -> Response:
    caller = await authenticate(request)
    view = await run_in_threadpool(_service(request).describe, caller, request.path_params["secret_id"])
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


@operation("Secret wrapping")
async def wrap_secret(request: Request) -> Response:
    caller = await authenticate(request)
    async with secret_first(request, caller, "secret:decrypt", "Secret wrapping"):
        ttl = await _ttl(request)
    wrapped = await run_in_threadpool(_service(request).wrap, caller, request.path_params["secret_id"], ttl)
    return json_response({"wrap_token": wrapped.token, "expires": isoformat(wrapped.expires)}, status=201)


async def _ttl(request: Request) -> int | None:
    """The optional JSON body ``{"ttl": seconds}``; an empty body means the default."""
    raw = await read_body(request, ctx(request).settings.limits.max_request_bytes)
    if not raw.strip():
        return None
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Unexpected content type. Expected content types are: ['application/json']")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput("Malformed JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("Provided object does not match schema 'Wrap': the body is not a JSON object")
    ttl = body.get("ttl")
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidInput("Provided object does not match schema 'Wrap': 'ttl' is not of type 'integer'")
    return ttl


@operation("Secret unwrapping")
async def unwrap(request: Request) -> Response:
    # The token is the only credential: no X-Project-Id, no X-Auth-Token. It travels in a header, never in
    # the URL, so access logs and proxies do not record it.
    token = request.headers.get(WRAP_TOKEN_HEADER)
    data, content_type = await run_in_threadpool(_service(request).unwrap, token, request.headers.get("accept"))
    return Response(data, media_type=None, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
