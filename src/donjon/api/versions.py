"""Version discovery: ``GET /`` (300, no auth) and ``GET /v1`` (spec §1)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import donjon
from donjon.api.common import authenticate, base_url, json_response, microversion, operation
from donjon.api.middleware import MAX_VERSION, MIN_VERSION
from donjon.api.schemas import shapes


def _links(request: Request) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base_url(request)}/v1/"},
        {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
    ]


def _version(request: Request) -> dict[str, Any]:
    # Clients at 1.0 expect the legacy shape; from 1.1 (and "latest") the shape with the version range.
    if microversion(request) <= (1, 0):
        return {
            "id": "v1",
            "status": "stable",
            "links": _links(request),
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.key-manager-v1+json"}],
        }
    return {
        "id": "v1",
        "status": "CURRENT",
        "min_version": f"{MIN_VERSION[0]}.{MIN_VERSION[1]}",
        "max_version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
        "links": _links(request),
    }


@operation("Version retrieval")
async def root(request: Request) -> Response:
    if "build" in request.query_params:
        return json_response({"build": donjon.__version__})
    if request.headers.get("accept", "").strip() == "application/json-home":
        return RedirectResponse(f"{base_url(request)}/v1/", status_code=302)
    version = _version(request)
    values: Any = [version] if microversion(request) > (1, 0) else {"values": [version]}
    return json_response({"versions": values}, status=300)


@operation("Version retrieval")
async def v1(request: Request) -> Response:
    await authenticate(request)
    return json_response({"version": _version(request)})


# The answers' shapes in the OpenAPI document (api/openapi.py), beside the code that builds them.
RESPONSES: shapes.Schema = {
    # 1.0 callers get the legacy shape (status "stable", media-types), 1.1 and later the version range.
    "V1": shapes.closed(
        ["version"],
        {
            "version": shapes.closed(
                ["id", "status", "links"],
                {
                    "id": {"const": "v1"},
                    "status": {"enum": ["stable", "CURRENT"]},
                    "min_version": {"type": "string"},
                    "max_version": {"type": "string"},
                    "links": {"type": "array", "items": {"type": "object"}},
                    "media-types": {"type": "array", "items": {"type": "object"}},
                },
            )
        },
    ),
    "Build": shapes.closed(["build"], {"build": {"type": "string"}}),
}
