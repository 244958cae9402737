"""Barbican endpoints donjon refuses on purpose, with the reason in the error (docs/api-compatibility.md).

- ``/v1/secret-stores``: with a single secret store configured, Barbican answers every one of these 404
  ("multiple backends support is not enabled") once its policy rule passed (403 before); donjon does the
  same until several stores exist.
- ``/v1/transport_keys``: no Barbican secret store has offered transport keys for years; the list is empty
  and keys cannot be registered.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, ctx, json_response, operation
from donjon.errors import InvalidInput, NotFound


def _secret_store_rule(method: str, path: str) -> str:
    """The rule Barbican checks first, before it finds multiple backends disabled."""
    if path in ("", "global-default", "preferred"):
        return {"": "secretstores:get", "global-default": "secretstores:get_global_default"}.get(
            path, "secretstores:get_preferred"
        )
    if path.endswith("/preferred"):
        return "secretstore_preferred:delete" if method == "DELETE" else "secretstore_preferred:post"
    return "secretstore:get"


@operation("Secret store retrieval")
async def secret_stores(request: Request) -> Response:
    caller = await authenticate(request)
    rule = _secret_store_rule(request.method, request.path_params.get("path", "").strip("/"))
    ctx(request).policy.enforce(rule, caller, operation="Secret store retrieval")
    raise NotFound("Not Found. Multiple backends support is not enabled in service configuration.")


@operation("Transport Key retrieval")
async def list_transport_keys(request: Request) -> Response:
    await authenticate(request)
    return json_response({"transport_keys": [], "total": 0})


@operation("Transport Key creation")
async def create_transport_key(request: Request) -> Response:
    await authenticate(request)
    raise InvalidInput("Transport keys are not supported: no secret store of this server offers them.")


@operation("Transport Key retrieval")
async def transport_key(request: Request) -> Response:
    await authenticate(request)
    raise NotFound("Not Found. Transport key not found.")
