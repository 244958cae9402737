"""Pure-ASGI middleware every response passes through: request id, microversion, trailing slashes.

Per Barbican (spec §0.3): ``OpenStack-API-Version: key-manager X.Y|latest``; absent means 1.0, out of range
is 406, malformed is 400; every response, errors included, echoes the version used and ``Vary``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from donjon.api.errors import error_response
from donjon.ids import uuid4_text

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIN_VERSION = (1, 0)
MAX_VERSION = (1, 2)
_VERSION_RE = re.compile(r"^([0-9]+)\.([0-9]+)$")


def parse_microversion(header: str | None) -> tuple[int, int]:
    """The version a request asks for. Raises ValueError (400) or LookupError (406)."""
    if header is None:
        return MIN_VERSION
    for part in header.split(","):
        service, _, value = part.strip().partition(" ")
        if service.lower() != "key-manager":
            continue
        value = value.strip().lower()
        if value == "latest":
            return MAX_VERSION
        m = _VERSION_RE.match(value)
        if not m:
            raise ValueError(value)
        version = (int(m.group(1)), int(m.group(2)))
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise LookupError(value)
        return version
    return MIN_VERSION


class OpenStackMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # Clients post to "secrets/" as often as to "secrets": both name the same resource.
            scope["path"] = path.rstrip("/") or "/"
        request_id = f"req-{uuid4_text()}"
        header = None
        for name, value in scope["headers"]:
            if name == b"openstack-api-version":
                header = value.decode("latin-1")
                break
        extra: list[tuple[bytes, bytes]] = [(b"x-openstack-request-id", request_id.encode())]
        try:
            version = parse_microversion(header)
        except (ValueError, LookupError) as exc:
            status = 406 if isinstance(exc, LookupError) else 400
            extra += [(b"openstack-api-version", b"key-manager 1.0"), (b"vary", b"OpenStack-API-Version")]
            description = f"Invalid API version requested: {exc.args[0]!r}"
            if status == 406:  # what would have worked
                low, high = (f"{v[0]}.{v[1]}" for v in (MIN_VERSION, MAX_VERSION))
                description += f"; this server serves key-manager {low} to {high} (or 'latest')"
            response = error_response(status, description)
            response.raw_headers.extend(extra)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["microversion"] = version
        scope["state"]["request_id"] = request_id
        extra += [
            (b"openstack-api-version", f"key-manager {version[0]}.{version[1]}".encode()),
            (b"vary", b"OpenStack-API-Version"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
