"""The console's routes: its two pages, its assets, and small JSON helpers the API has no equivalent for.

``GET  /ui``, ``/ui/unwrap``        the console and the one-time unwrap page (static HTML)
``GET  /ui/assets/{path}``          its modules, style sheet and icon, from the package, nothing else
``GET  /ui/api/config``             the auth mode (which sign-in form to show) and the reveal time
``GET  /ui/api/whoami``             the project, user and roles the request's credential names
``POST /ui/api/keystone/tokens``    keystone mode: a user's password exchanged for a project-scoped token
``DELETE /ui/api/keystone/tokens``  keystone mode: the token in ``X-Auth-Token`` revoked (sign-out)

Every response carries the same headers: a Content-Security-Policy that admits only this origin's own
scripts and style sheets (no inline script or style, Trusted Types with no policy, so no HTML is ever built
from strings), ``frame-ancestors 'none'``, no form submission by the browser itself (a form posted before
its module loaded must not put a password in a URL), ``Cache-Control: no-store`` and no referrer.
"""

from __future__ import annotations

import functools
import mimetypes
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from donjon.api.common import Handler, authenticate, ctx, json_response, operation, read_json
from donjon.api.errors import error_response
from donjon.errors import InvalidInput, NotFound

STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Pages and files: no caller and nothing done, like discovery (the API requests they make are audited).
UNAUDITED = frozenset({"/ui", "/ui/unwrap", "/ui/assets/{path:path}", "/ui/api/config"})
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
_MAX_FIELD = 255
_MAX_PASSWORD = 4096


@functools.cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Every file under static/, by its path there: the only paths /ui/assets/ serves."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            charset = "; charset=utf-8" if kind.startswith("text/") or kind.endswith("+xml") else ""
            files[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), kind + charset)
    return files


def _file(name: str) -> Response:
    found = _assets().get(name)
    if found is None:
        return error_response(404, "Not Found")
    body, media_type = found
    return Response(body, headers={"Content-Type": media_type})


async def console_page(request: Request) -> Response:
    return _file("index.html")


async def unwrap_page(request: Request) -> Response:
    return _file("unwrap.html")


async def asset(request: Request) -> Response:
    return _file(request.path_params["path"])


async def config(request: Request) -> Response:
    settings = ctx(request).settings
    return json_response({"auth": settings.auth, "reveal_seconds": settings.ui.reveal_seconds})


@operation("Caller retrieval")
async def whoami(request: Request) -> Response:
    caller = await authenticate(request)
    body = {
        "project_id": caller.project_id or None,
        "user_id": caller.user_id,
        "roles": list(caller.roles),
        "system_scope": caller.system_scope,
    }
    return json_response(body)


@operation("Keystone sign-in")
async def keystone_sign_in(request: Request) -> Response:
    keystone = ctx(request).keystone
    if keystone is None:
        raise NotFound("Keystone sign-in is only served in keystone mode.")
    from donjon.auth.keystone import PasswordCredentials  # the keystone extra: present in keystone mode

    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("Provided object does not match schema 'SignIn': the body is not a JSON object")
    credentials = PasswordCredentials(
        username=_field(body, "username"),
        password=_field(body, "password", limit=_MAX_PASSWORD, strip=False),
        project=_field(body, "project"),
        user_domain=_field(body, "user_domain", default="Default"),
        project_domain=_field(body, "project_domain", default="Default"),
    )
    signed_in = await run_in_threadpool(keystone.sign_in, credentials)
    request.state.caller = signed_in.caller  # the audit record of the sign-in names who signed in
    caller = signed_in.caller
    answer = {
        "token": signed_in.token,
        "expires_at": signed_in.expires_at,
        "project_id": caller.project_id,
        "project_name": signed_in.project_name,
        "user_id": caller.user_id,
        "user_name": signed_in.user_name,
        "roles": list(caller.roles),
    }
    return json_response(answer, status=201)


@operation("Keystone sign-out")
async def keystone_sign_out(request: Request) -> Response:
    keystone = ctx(request).keystone
    if keystone is None:
        raise NotFound("Keystone sign-in is only served in keystone mode.")
    token = request.headers.get("x-auth-token", "")
    caller = keystone.cached(token)
    if caller is not None:
        request.state.caller = caller  # who signed out, on the audit record
    await run_in_threadpool(keystone.sign_out, token)
    return Response(status_code=204)


def _field(
    body: dict[str, object], name: str, *, limit: int = _MAX_FIELD, strip: bool = True, default: str = ""
) -> str:
    value = body.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str) or not (value.strip() if strip else value) or len(value) > limit:
        raise InvalidInput(f"Provided object does not match schema 'SignIn': '{name}' must be a non-empty string")
    return value.strip() if strip else value


def _secured(handler: Handler) -> Handler:
    """Every answer of the console's routes, errors included, with the security headers."""

    @functools.wraps(handler)
    async def secured(request: Request) -> Response:
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return secured


def ui_routes() -> list[Route]:
    return [
        Route("/ui", _secured(console_page), methods=["GET"]),
        Route("/ui/unwrap", _secured(unwrap_page), methods=["GET"]),
        Route("/ui/assets/{path:path}", _secured(asset), methods=["GET"]),
        Route("/ui/api/config", _secured(config), methods=["GET"]),
        Route("/ui/api/whoami", _secured(whoami), methods=["GET"]),
        Route("/ui/api/keystone/tokens", _secured(keystone_sign_in), methods=["POST"]),
        Route("/ui/api/keystone/tokens", _secured(keystone_sign_out), methods=["DELETE"]),
    ]
