"""ASGI middleware: one CADF event per API request, whatever the route and whatever the outcome.

It runs inside :class:`~donjon.api.middleware.OpenStackMiddleware` (request id, normalised path) and sees
the final status of every request, 401/403/404/405 included. It matches the route itself (template and
path parameters) and reads the caller that ``authenticate`` left in the request state; it never reads a
body, a query string or a header.

Fail-closed: a *pending* event is written before a handler that may have an effect runs, so no handler
has an effect that is not on record (if it cannot be written: 503, the handler never runs); the outcome
event is written when the response starts, before any byte of its body is sent, so a response (a payload,
say) is only released once its outcome is on record (if it cannot be written: the response is replaced by
a 503; an effect the handler already committed stays, and its pending record stands for it). Reads that
change nothing (GET and HEAD, except a payload's, which may spend a max_reads secret) need no pending
event: what they would release is held back until their outcome is on record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from starlette.routing import BaseRoute, Match, Route

from donjon.api.errors import error_response
from donjon.api.middleware import ASGIApp, Message, Receive, Scope, Send
from donjon.audit.auditor import Auditor
from donjon.audit.events import Target, build_event, target_of

# Discovery and liveness: no caller, no resource, polled by load balancers (and /metrics, by Prometheus).
EXEMPT = frozenset({"/", "/v1", "/healthcheck", "/livez", "/readyz", "/openapi.json", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
UNAVAILABLE = "The audit log is unavailable. Please try again later."


class AuditMiddleware:
    def __init__(
        self, app: ASGIApp, auditor: Auditor, routes: Sequence[BaseRoute], exempt: frozenset[str] = EXEMPT
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.auditor = auditor
        self.routes = [r for r in routes if isinstance(r, Route)]

    def _match(self, scope: Scope) -> tuple[str | None, dict[str, Any]]:
        partial: tuple[str | None, dict[str, Any]] | None = None
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route.path, child.get("path_params", {})
            if match is Match.PARTIAL and partial is None:
                partial = (route.path, child.get("path_params", {}))  # the path exists, not the method (405)
        return partial or (None, {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template, params = self._match(scope)
        if template in self.exempt:
            await self.app(scope, receive, send)
            return
        target = target_of(scope["method"], template, params, scope["path"])
        state = scope.setdefault("state", {})
        request_id = str(state.get("request_id", ""))
        auditor = self.auditor
        if (
            auditor.fail_closed
            and has_effect(scope["method"], template)
            and not await auditor.record(build_event(target, None, None, request_id))
        ):
            await error_response(503, UNAVAILABLE)(scope, receive, send)
            return
        started = replaced = False

        async def send_audited(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                created = _created_id(message) if status in (201, 202) else None
                done = replace(target, resource_id=created) if created else target
                if not await self._outcome(done, state, status, request_id):
                    replaced = True
                    await error_response(503, UNAVAILABLE)(scope, receive, send)
                    return
            if not replaced:
                await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            if not started:  # the server answers 500 for it
                await self._outcome(target, state, 500, request_id)
            raise

    async def _outcome(self, target: Target, state: dict[str, Any], status: int, request_id: str) -> bool:
        """Record the outcome; False if the response must not be released (fail-closed, not recorded)."""
        accepted = await self.auditor.record(build_event(target, state.get("caller"), status, request_id))
        return accepted or not self.auditor.fail_closed


def has_effect(method: str, template: str | None) -> bool:
    """Whether a request may change something: anything but a read, and a payload read (max_reads)."""
    return method not in SAFE_METHODS or (template is not None and template.endswith("/payload"))


def _created_id(message: Message) -> str | None:
    """The id of a resource a 201/202 created: the last segment of the Location this server built."""
    for name, value in message.get("headers", []):
        if name.lower() == b"location":
            last = bytes(value).decode("latin-1").rstrip("/").rsplit("/", 1)[-1]
            return last[:64] or None
    return None
