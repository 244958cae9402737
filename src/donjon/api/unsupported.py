"""Barbican endpoints donjon refuses on purpose, with the reason in the error (docs/api-compatibility.md).

- ``/v1/transport_keys``: no Barbican secret store has offered transport keys for years; the list is empty
  and keys cannot be registered.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import authenticate, json_response, operation
from donjon.errors import InvalidInput, NotFound


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
