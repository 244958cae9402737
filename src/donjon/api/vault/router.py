"""Routing of ``/v1/<mount>/<path>`` to engines, and the request object engines are handed.

Only the top-level segments of configured mounts (``sys``, ``auth``, the KV mount, ``transit``) are routed
here, so every path the Barbican API serves keeps its own routes and error shape. Inside a mount, an engine
is any ``async (VaultCall) -> Response``; most are a :class:`PathTable`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from donjon.api.audit_middleware import announce_effect
from donjon.api.common import ctx, query_params, read_body
from donjon.api.vault import wrapping
from donjon.api.vault.auth import VaultIdentity, authenticate
from donjon.api.vault.errors import (
    VaultError,
    bad_request,
    no_handler,
    response_for,
    unsupported_operation,
    unsupported_path,
)

Operation = Literal["read", "write", "list", "delete", "patch"]
_OPERATIONS: dict[str, Operation] = {
    "GET": "read",
    "HEAD": "read",
    "POST": "write",
    "PUT": "write",
    "LIST": "list",
    "DELETE": "delete",
    "PATCH": "patch",
}


@dataclass
class VaultCall:
    """One request as an engine sees it: Vault's operation, the mount, and the path inside the mount."""

    request: Request
    operation: Operation
    mount: str  # "secret", "auth/token", "sys"
    path: str  # inside the mount, no leading or trailing slash ("" for the mount itself)
    # Secret engines as sys/mounts lists them: "secret/" -> mount entry (responses.mount_entry).
    mounts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Seconds of X-Vault-Wrap-TTL: the router wraps a 200 logical answer (api/vault/wrapping.py).
    wrap_ttl: int | None = None
    _identity: VaultIdentity | None = field(default=None, repr=False)

    @property
    def full_path(self) -> str:
        return f"{self.mount}/{self.path}" if self.path else self.mount

    async def identity(self) -> VaultIdentity:
        """The caller (403 ``permission denied`` without a valid token); authenticated once per request."""
        if self._identity is None:
            self._identity = await authenticate(self.request)
        return self._identity

    async def body(self) -> bytes:
        return await read_body(self.request, ctx(self.request).settings.limits.max_request_bytes)

    async def json(self) -> dict[str, Any]:
        """The request's parameters: a JSON object (or a form), ``{}`` when there is no body."""
        raw = await self.body()
        content_type = self.request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            try:
                return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise bad_request("failed to parse form input") from None
        if not raw.strip():
            return {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise bad_request(f"failed to decode JSON input: {go_json_error(raw)}") from None
        if value is None:
            return {}  # Go decodes JSON null into a nil map without complaint (the CLI's bare `unwrap` sends it)
        if not isinstance(value, dict):
            raise bad_request(f"failed to decode JSON input: {_go_type_error(value)}")
        return value


_GO_CONTEXT = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Extra data": "after top-level value",
}


def go_json_error(raw: bytes) -> str:
    """Go's encoding/json message for a body that does not parse (Vault quotes it), for the usual cases."""
    text = raw.decode("utf-8", errors="replace")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return "unexpected EOF"
        char = text[exc.pos]
        context = _GO_CONTEXT.get(exc.msg.split(":", 1)[0], "looking for beginning of value")
        if exc.msg.startswith("Expecting ',' delimiter"):
            context = (
                "after object key:value pair"
                if text[: exc.pos].rfind("{") > text[: exc.pos].rfind("[")
                else "after array element"
            )
        return f"invalid character {char!r} {context}"
    except ValueError:
        pass
    return "invalid character looking for beginning of value"


def _go_type_error(value: Any) -> str:
    kind = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}.get(type(value), "null")
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


Engine = Callable[[VaultCall], Awaitable[Response]]
Handler = Callable[[VaultCall, "re.Match[str]"], Awaitable[Response]]


class PathTable:
    """An engine made of path patterns, each serving some operations (Vault's 405/404 for the rest)."""

    def __init__(self, fallback: Engine | None = None) -> None:
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._fallback = fallback
        self._announcing: set[Handler] = set()

    def route(
        self,
        pattern: str,
        *,
        read: Handler | None = None,
        write: Handler | None = None,
        list: Handler | None = None,  # noqa: A002 - Vault's name for the operation
        delete: Handler | None = None,
        patch: Handler | None = None,
    ) -> None:
        handlers = {"read": read, "write": write, "list": list, "delete": delete, "patch": patch}
        self._routes.append((re.compile(pattern), {k: h for k, h in handlers.items() if h is not None}))

    def announce_effects(self, *handlers: Handler) -> None:
        """``handlers`` change nothing unless they announce it first (``before_effect``): the audit log writes no
        pending event before they run, as for a read (``AuditMiddleware``'s ``announced``)."""
        self._announcing.update(handlers)

    def announces_effects(self, operation: Operation, path: str) -> bool:
        """Whether the handler that ``__call__`` would pick for ``operation`` on ``path`` announces its effects."""
        found = self._match(path)
        return found is not None and found[1].get(operation) in self._announcing

    def _match(self, path: str) -> tuple[re.Match[str], dict[str, Handler]] | None:
        """The first pattern that ``path`` matches, with its handlers by operation."""
        for regex, handlers in self._routes:
            match = regex.fullmatch(path)
            if match is not None:
                return match, handlers
        return None

    def writes(self, routes: Mapping[str, Handler]) -> None:
        """Patterns that serve ``write`` alone (an engine's actions: encrypt, sign...), in the order given."""
        for pattern, handler in routes.items():
            self.route(pattern, write=handler)

    async def __call__(self, call: VaultCall) -> Response:
        found = self._match(call.path)
        if found is not None:
            match, handlers = found
            handler = handlers.get(call.operation)
            if handler is None:
                raise unsupported_operation()
            return await handler(call, match)
        if self._fallback is not None:
            return await self._fallback(call)
        raise unsupported_path()


@dataclass(frozen=True)
class Mounted:
    """An engine at a mount path; ``entry`` is what ``sys/mounts`` shows (None: not a secret engine)."""

    engine: Engine
    entry: Mapping[str, Any] | None = None


class VaultRouter:
    """Finds the engine of a ``/v1/...`` path by its longest mount prefix."""

    def __init__(self, engines: Mapping[str, Mounted]) -> None:
        by_length = sorted(engines.items(), key=lambda item: -len(item[0]))
        self._engines = {mount: mounted.engine for mount, mounted in by_length}
        self._mounts = {f"{m}/": e.entry for m, e in sorted(engines.items()) if e.entry is not None}

    def routes(self) -> list[Route]:
        segments = sorted({mount.split("/", 1)[0] for mount in self._engines})
        routes: list[Route] = []
        for segment in segments:
            # An ASGI endpoint (not a function): Starlette then routes every method to it, LIST included,
            # and the operation's 405 is Vault's own.
            routes.append(Route(f"/v1/{segment}", self))
            routes.append(Route(f"/v1/{segment}/{{vault_path:path}}", self))
        return routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request)
        except Exception as exc:  # noqa: BLE001 - the one place the Vault API's errors become HTTP
            response = response_for(exc)
        await response(scope, receive, send)

    def _mount_of(self, scope: Scope) -> tuple[str, str | None]:
        """The request's path under ``/v1`` (no slashes around it) and the mount it falls under, if any."""
        full: str = scope["path"].removeprefix("/v1").strip("/")
        return full, next((m for m in self._engines if full == m or full.startswith(m + "/")), None)

    def effects_announced(self, scope: Scope) -> bool:
        """Whether the engine's handler of this request announces its effects itself (``PathTable``'s
        ``announce_effects``): the audit middleware then writes no pending event before it runs."""
        full, mount = self._mount_of(scope)
        operation = _OPERATIONS.get(scope["method"])
        if mount is None or operation is None:
            return False
        engine = self._engines[mount]
        return isinstance(engine, PathTable) and engine.announces_effects(operation, full[len(mount) :].strip("/"))

    async def _dispatch(self, request: Request) -> Response:
        full, mount = self._mount_of(request.scope)
        if mount is None:
            raise no_handler(full)
        engine = self._engines[mount]
        ttl = wrapping.wrap_ttl(request)
        operation = _OPERATIONS.get(request.method)
        if operation is None:
            raise unsupported_operation()
        if operation == "read" and query_params(request).get("list", "").lower() in ("true", "1"):
            operation = "list"
        call = VaultCall(request, operation, mount, full[len(mount) :].strip("/"), self._mounts, wrap_ttl=ttl)
        response = await engine(call)
        if ttl is None or response.status_code != 200:
            return response  # errors are never wrapped (as Vault)
        answer = orjson.loads(response.body)
        if not isinstance(answer, dict) or "request_id" not in answer or answer.get("wrap_info") is not None:
            return response  # not a logical answer (sys/health...), or wrapped already (rewrap)
        identity = await call.identity()
        # Wrapping stores the answer behind a new single-use token: an effect, recorded as intended first (a
        # request whose handler announces its effects had no pending event yet).
        await announce_effect(request)
        return await wrapping.wrap(request, identity.caller, answer, ttl, call.full_path)


__all__ = ["Engine", "Handler", "Mounted", "Operation", "PathTable", "VaultCall", "VaultError", "VaultRouter"]
