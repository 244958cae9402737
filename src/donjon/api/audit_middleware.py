"""ASGI middleware: one CADF event per API request, whatever the route and whatever the outcome.

It runs inside :class:`~donjon.api.middleware.OpenStackMiddleware` (request id, normalised path) and sees
the final status of every request, 401/403/404/405 included. It matches the route itself (template and
path parameters) and reads the caller that ``authenticate`` left in the request state; it never reads a
body, a query string or a header.

Fail-closed: a *pending* event is written before a handler that may have an effect runs, so no handler
has an effect that is not on record (if it cannot be written: 503, the handler never runs); the outcome
event is written when the response starts, before any byte of its body is sent, so a response (a payload,
say) is only released once its outcome is on record (if it cannot be written: the response is replaced by
a 503; an effect the handler already committed stays, and its pending record stands for it). Reads (GET
and HEAD) need no pending event: what they would release is held back until their outcome is on record.
The one read with an effect, a limited secret's payload (each read spends one of its max_reads), is known
only once the secret is found: such a handler calls ``before_effect(request)``'s function first, which writes
the pending event then (503 if it cannot, before anything is spent). A plain payload read, the most common
request, thus waits for one durable record instead of two.

Some requests that are not reads are handled as reads too, as the ``announced`` predicate says: the Vault
API's transit operations (encrypt, decrypt, sign...) change nothing, except an encrypt that creates its key
(Vault's upsert). Their handlers announce that one effect with ``before_effect``; two other effects are
announced from the event loop with ``announce_effect``, whatever the request: a use-limited token's use,
spent while authenticating (a GET's too), and a response wrapped into a single-use token.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from anyio import from_thread
from starlette.requests import Request

from donjon.api.errors import error_response
from donjon.api.middleware import ASGIApp, Message, Receive, Scope, Send
from donjon.api.routing import RouteIndex
from donjon.audit.auditor import Auditor
from donjon.audit.events import Target, build_event, target_of
from donjon.errors import Unavailable

# Discovery and liveness: no caller, no resource, polled by load balancers (and /metrics, by Prometheus).
EXEMPT = frozenset({"/", "/v1", "/healthcheck", "/livez", "/readyz", "/openapi.json", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
UNAVAILABLE = "The audit log is unavailable. Please try again later."
# Where a read's handler finds the function that records its pending event (request.state).
_INTENT = "audit_intent"


class AuditMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        auditor: Auditor,
        routes: RouteIndex,
        exempt: frozenset[str] = EXEMPT,
        announced: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.auditor = auditor
        self.routes = routes  # its match is left in the scope for the router (api/routing.py)
        # Requests with an effect-capable method whose handlers announce their effects (before_effect).
        self.announced = announced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template, params = self.routes.match(scope)
        if template in self.exempt:
            await self.app(scope, receive, send)
            return
        target = target_of(scope["method"], template, params, scope["path"])
        state = scope.setdefault("state", {})
        request_id = str(state.get("request_id", ""))
        auditor = self.auditor
        if auditor.fail_closed:
            if has_effect(scope["method"]) and not (self.announced is not None and self.announced(scope)):
                if not await auditor.record(build_event(target, None, None, request_id)):
                    await error_response(503, UNAVAILABLE)(scope, receive, send)
                    return
            else:
                state[_INTENT] = _record_intent_once(auditor, target, request_id)
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


def has_effect(method: str) -> bool:
    """Whether a request may change something before its handler knows more: anything but a read."""
    return method not in SAFE_METHODS


def _record_intent_once(auditor: Auditor, target: Target, request_id: str) -> Callable[[], Coroutine[Any, Any, None]]:
    recorded = False

    async def record_intent() -> None:
        nonlocal recorded
        if recorded:
            return
        if not await auditor.record(build_event(target, None, None, request_id)):
            raise Unavailable(UNAVAILABLE)
        recorded = True

    return record_intent


def _nothing() -> None:
    return None


async def announce_effect(request: Request) -> None:
    """On the event loop, right before an effect its request was not known to have (a use-limited token's use, a
    wrapped response): the request's pending audit event, if it has none yet. Raises Unavailable (503) if the
    log cannot take it; does nothing for a request whose pending event went first, or without fail-closed."""
    intent: Callable[[], Coroutine[Any, Any, None]] | None = request.scope.get("state", {}).get(_INTENT)
    if intent is not None:
        await intent()


def before_effect(request: Request) -> Callable[[], None]:
    """For a read that may turn out to change something (a limited secret's payload, a transit encrypt that
    creates its key): a function that its service calls, from the worker thread, right before the change.
    It writes the request's pending audit event and raises Unavailable (503) if the log cannot take it, so
    nothing is spent unrecorded. Without fail-closed auditing it does nothing."""
    intent: Callable[[], Coroutine[Any, Any, None]] | None = request.scope.get("state", {}).get(_INTENT)
    if intent is None:
        return _nothing
    return lambda: from_thread.run(intent)


def _created_id(message: Message) -> str | None:
    """The id of a resource a 201/202 created: the last segment of the Location this server built."""
    for name, value in message.get("headers", []):
        if name.lower() == b"location":
            last = bytes(value).decode("latin-1").rstrip("/").rsplit("/", 1)[-1]
            return last[:64] or None
    return None
