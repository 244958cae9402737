"""Request parsing and response helpers shared by the route modules."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from donjon.api.audit_middleware import announce_effect
from donjon.api.errors import response_for
from donjon.api.schemas.secrets import has_nul
from donjon.audit.reader import AuditLog
from donjon.auth import Caller
from donjon.auth.dev import caller_from_headers
from donjon.auth.tokens import TokenService
from donjon.blocking import WouldBlock, on_event_loop, run_awaiting
from donjon.config import Settings
from donjon.errors import InvalidInput, TooLarge, Unauthorized, UnsupportedMediaType
from donjon.observability import metrics
from donjon.policy import Policy
from donjon.services.access import AccessCheck
from donjon.services.acls import AclService
from donjon.services.containers import ContainerService
from donjon.services.kv import KvService
from donjon.services.orders import OrderService
from donjon.services.quotas import QuotaAdmin
from donjon.services.reaper import Reaper
from donjon.services.secrets import SecretService
from donjon.services.stores import SecretStoreService
from donjon.services.transit import TransitService
from donjon.services.transport_keys import TransportKeyService
from donjon.services.versions import SecretVersions
from donjon.services.wraps import WrapService
from donjon.timeutil import SYSTEM_CLOCK, Clock
from donjon.workers.orders import OrderWorker
from donjon.workers.reaper import ExpiryReaper

if TYPE_CHECKING:  # keystoneauth1 is an optional dependency (the keystone extra)
    from donjon.auth.keystone import KeystoneTokens
    from donjon.services.readiness import Readiness

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class AppContext:
    """What handlers reach through ``request.app.state.ctx``."""

    settings: Settings
    policy: Policy
    secrets: SecretService
    containers: ContainerService
    orders: OrderService
    acls: AclService
    quota_admin: QuotaAdmin
    secret_stores: SecretStoreService
    # Policy decisions alone, for authorising a request before its body is validated (api/guard.py).
    access: AccessCheck
    transport_keys: TransportKeyService
    # Lifecycle extensions: versions, wrapped hand-off and the reaper's pass.
    versions: SecretVersions
    wraps: WrapService
    expiry: Reaper
    # KV v2 of the Vault API (api/vault/kv.py) over the same secrets.
    kv: KvService
    # Set in token mode: validates bearer tokens. None in dev mode (headers name the caller).
    tokens: TokenService | None
    # The order worker of this process, woken when an order is queued here (None: workers run elsewhere).
    order_worker: OrderWorker | None
    # Set in keystone mode: validates X-Auth-Token against Keystone.
    keystone: KeystoneTokens | None = None
    # This process's reaper thread (None: the reaper runs elsewhere).
    reaper: ExpiryReaper | None = None
    # The local audit log, read back by /v1/audit/* (None: auditing is off).
    audit_log: AuditLog | None = None
    # What /readyz checks (api/health.py).
    readiness: Readiness | None = None
    # The Vault API's transit engine (api/vault/transit.py).
    transit: TransitService | None = None
    # Where the handlers' "now" comes from (an expiration in the past, the list's expired secrets), as the
    # services' own: tests move it instead of sleeping.
    clock: Clock = SYSTEM_CLOCK
    # SQLite: reads are tried on the event loop first (run_read); MariaDB's go to a worker thread.
    reads_on_loop: bool = False
    # PostgreSQL (psycopg): reads are tried on the loop in a greenlet, the driver awaiting the server there.
    reads_awaiting: bool = False


R = TypeVar("R")
_SERVED, _MOVED = metrics.READS_ON_LOOP.labels("served"), metrics.READS_ON_LOOP.labels("moved")


async def run_read(context: AppContext, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """A read: on the event loop where the database is local, or its driver can await the server there, and
    every other step it needs is at hand; in a worker thread, from the start, when one of its steps would wait
    (``donjon.blocking``)."""
    if context.reads_on_loop:
        try:
            with on_event_loop():
                result = fn(*args, **kwargs)
        except WouldBlock:
            _MOVED.inc()
        else:
            _SERVED.inc()
            return result
    elif context.reads_awaiting:
        try:
            result = await run_awaiting(fn, *args, **kwargs)
        except WouldBlock:
            _MOVED.inc()
        else:
            _SERVED.inc()
            return result
    return await run_in_threadpool(fn, *args, **kwargs)


def ctx(request: Request) -> AppContext:
    context: AppContext = request.app.state.ctx
    return context


def operation(name: str) -> Callable[[Handler], Handler]:
    """Turn any exception raised by a handler into Barbican's error body, naming the operation on 500s."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            try:
                return await fn(request)
            except Exception as exc:  # noqa: BLE001 - the one place errors become HTTP
                return _error(request, exc, name)

        return handler

    return wrap


def _error(request: Request, exc: Exception, name: str) -> Response:
    response = response_for(exc, name)
    keystone = ctx(request).keystone
    if keystone is not None and isinstance(exc, Unauthorized):
        # As keystonemiddleware: a 401 names where to get a token.
        response.headers["WWW-Authenticate"] = keystone.challenge
    return response


_AUTHENTICATED = "donjon.authenticated"  # the request's Caller, once authenticated (an ASGI scope extension key)


async def authenticate(request: Request) -> Caller:
    # Once per request: a use-limited token (Vault's num_uses) spends one use per request, not per call.
    # Kept in the scope, not request.state: a getattr default on the state costs a raised AttributeError.
    authenticated: Caller | None = request.scope.get(_AUTHENTICATED)
    if authenticated is not None:
        return authenticated
    caller = await _authenticate(request)
    request.scope[_AUTHENTICATED] = caller
    request.state.caller = caller  # the initiator of the request's audit event (donjon.audit)
    return caller


async def _authenticate(request: Request) -> Caller:
    context = ctx(request)
    if context.tokens is None and context.keystone is None:
        return caller_from_headers(request.headers)
    token = request.headers.get("x-auth-token")
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value if scheme.lower() == "bearer" else None
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    if context.keystone is not None:
        # A cache hit is a dict look-up; a miss asks Keystone over HTTP, in a thread, off the event loop.
        caller = context.keystone.cached(token)
        if caller is None:
            caller = await run_in_threadpool(context.keystone.validate, token)
        return caller
    assert context.tokens is not None
    # A cache hit is a dict look-up; a miss reads one row, rarely enough to do it here on the event loop.
    caller = context.tokens.cached(token)
    if caller is None:
        # A miss may spend a use of a use-limited token: the request's pending audit event goes first.
        await announce_effect(request)
        caller = context.tokens.authenticate(token)
    return caller


CLIENT_GONE = "The client closed the connection before sending the whole request body."


def microversion(request: Request) -> tuple[int, int]:
    version: tuple[int, int] = request.scope.get("state", {}).get("microversion", (1, 0))
    return version


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` (Barbican truncates instead)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge("Provided information too large to process")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge("Provided information too large to process")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client went away mid-body (a killed process, a load tool stopping): its fault, not the server's,
        # so a 400 in the access log and audit record, and no error logged. Nobody reads the answer.
        raise InvalidInput(CLIENT_GONE) from None
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    body = await read_body(request, ctx(request).settings.limits.max_request_bytes)
    return decode_json(request, body)


def decode_json(request: Request, body: bytes) -> Any:
    """A body already read (``read_body``), which must be declared and parse as JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Unexpected content type. Expected content types are: ['application/json']")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("Malformed JSON") from None


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def base_url(request: Request) -> str:
    """Where refs point: ``host_href`` if configured, else this request's scheme, host and prefix."""
    configured = ctx(request).settings.host_href
    if configured:
        return configured
    # The scope's scheme, not request.url's: building the URL object cost more than the rest of a ref.
    proto = request.headers.get("x-forwarded-proto") or request.scope["scheme"]
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{proto}://{host}{request.scope.get('root_path', '')}".rstrip("/")


BAD_QUERY = "URI provided invalid query string parameters."
_NO_QUERY = QueryParams("")  # immutable: shared by every request that has no query string


def query_params(request: Request) -> QueryParams:
    """``request.query_params``, without parsing an empty query string (most requests: ~2 % of a payload
    read's CPU went to building an empty ``QueryParams``)."""
    return request.query_params if request.scope.get("query_string") else _NO_QUERY


def query_text(request: Request, name: str) -> str | None:
    """A text filter from the query string: None when absent or empty, 400 when it holds a NUL character."""
    raw = query_params(request).get(name)
    if not raw:
        return None
    if has_nul(raw):
        raise InvalidInput(BAD_QUERY)
    return raw


def paging(request: Request) -> tuple[int, int]:
    """Barbican's paging rules: non-integers fall back to defaults, limit is clamped to 1..max."""
    limits = ctx(request).settings.limits

    def as_int(name: str) -> int | None:
        raw = query_params(request).get(name)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    offset = as_int("offset") or 0
    limit = as_int("limit") or limits.default_page_size
    return max(offset, 0), min(max(limit, 1), limits.max_page_size)


def paged_body(
    request: Request,
    collection: str,
    items: list[Any],
    total: int,
    offset: int,
    limit: int,
    path: str,
    extra_query: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {collection: items, "total": total}

    def link(new_offset: int) -> str:
        query = urlencode([("limit", str(limit)), ("offset", str(new_offset)), *(extra_query or [])])
        return f"{base_url(request)}/v1/{path}?{query}"

    if offset > 0:
        body["previous"] = link(max(0, offset - limit))
    if total > offset + limit:
        body["next"] = link(offset + limit)
    return body
