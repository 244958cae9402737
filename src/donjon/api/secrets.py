"""``/v1/secrets`` and ``/v1/secrets/{id}`` (+ ``/payload``): spec §2."""

from __future__ import annotations

import functools

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.audit_middleware import before_effect
from donjon.api.common import (
    BAD_QUERY,
    authenticate,
    base_url,
    ctx,
    json_response,
    microversion,
    operation,
    paged_body,
    paging,
    query_params,
    query_text,
    read_body,
    read_json,
    run_read,
)
from donjon.api.guard import rule_first, secret_first
from donjon.api.payload_types import AcceptHeader
from donjon.api.representations import secret_body, secret_ref
from donjon.api.schemas.quotas import INT32_MAX, INT32_MIN
from donjon.api.schemas.secrets import SECRET_TYPES, new_secret
from donjon.errors import InvalidInput
from donjon.services.commands import PayloadUpload
from donjon.services.secrets import SecretQuery, TimeBound
from donjon.timeutil import parse_iso8601

_SORT_KEYS = ("algorithm", "bit_length", "created", "expiration", "mode", "name", "secret_type", "status", "updated")
_SORT_COLUMNS = {"created": "created_at", "updated": "updated_at", "status": None}
_TIME_FILTERS = {"created": "created_at", "updated": "updated_at", "expiration": "expiration"}
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}
# A payload is never kept by a browser's or a proxy's cache (the web console reads them too).
NO_STORE = {"Cache-Control": "no-store"}


def _json_branch(accept: str | None) -> bool:
    # Barbican: absent, exactly application/json or exactly */* is metadata; anything else is the payload.
    return accept is None or accept.strip() in ("", "application/json", "*/*")


@operation("Secret creation")
async def create_secret(request: Request) -> Response:
    caller = await authenticate(request)
    context = ctx(request)
    async with rule_first(request, caller, "secrets:post", "Secret creation"):
        new = new_secret(await read_json(request), context.settings.limits.max_secret_bytes, now=context.clock.now())
    # The create joins the next group commit from the loop, answered with its whole batch; where that cannot
    # be done (a step would wait: a KEK to unwrap, an external store, a read over the network), in a worker
    # thread.
    record = await context.secrets.create_on_loop(caller, new)
    if record is None:
        record = await run_in_threadpool(context.secrets.create, caller, new)
    ref = secret_ref(base_url(request), record.id)
    return json_response({"secret_ref": ref}, status=201, headers={"Location": ref})


@operation("Secret retrieval")
async def get_secret(request: Request) -> Response:
    accept = request.headers.get("accept")
    if not _json_branch(accept):
        return await _payload(request, accept)
    caller = await authenticate(request)
    with_consumers = microversion(request) >= (1, 1)
    context = ctx(request)
    view = await run_read(
        context, context.secrets.get, caller, request.path_params["secret_id"], with_consumers=with_consumers
    )
    return json_response(secret_body(base_url(request), view, with_consumers=with_consumers))


@operation("Secret payload retrieval")
async def get_payload(request: Request) -> Response:
    return await _payload(request, request.headers.get("accept"))


async def _payload(request: Request, accept: str | None) -> Response:
    caller = await authenticate(request)
    if "trans_wrapped_session_key" in query_params(request):
        raise InvalidInput("Transport key wrapped retrieval is not supported.")
    version = _version(request)
    if version is not None:  # donjon extension: a previous version within its grace period
        data, content_type = await run_in_threadpool(
            functools.partial(ctx(request).versions.payload_version, before_effect=before_effect(request)),
            caller,
            request.path_params["secret_id"],
            version,
            AcceptHeader(accept),
        )
        return Response(data, media_type=None, headers={"Content-Type": content_type, **NO_STORE})
    # A limited secret's read spends one of its reads: its pending audit event goes first (before_effect).
    context = ctx(request)
    data, content_type = await run_read(
        context,
        functools.partial(context.secrets.get_payload, before_effect=before_effect(request)),
        caller,
        request.path_params["secret_id"],
        AcceptHeader(accept),
    )
    return Response(data, media_type=None, headers={"Content-Type": content_type, **NO_STORE})


def _version(request: Request) -> int | None:
    raw = query_params(request).get("version")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 2**31 - 1:
        raise InvalidInput(BAD_QUERY)
    return int(raw)


@operation("Secret update")
async def put_secret(request: Request) -> Response:
    caller = await authenticate(request)
    context = ctx(request)
    async with secret_first(request, caller, "secret:put", "Secret update"):
        body = await read_body(request, context.settings.limits.max_secret_bytes)
        upload = PayloadUpload(
            media_type=request.headers.get("content-type", "").split(";", 1)[0].strip().lower(),
            data=body,
            encoding=request.headers.get("content-encoding", "").strip().lower(),
        )
        await run_in_threadpool(context.secrets.put_payload, caller, request.path_params["secret_id"], upload)
    return Response(status_code=204)


@operation("Secret deletion")
async def delete_secret(request: Request) -> Response:
    caller = await authenticate(request)
    refuse = False
    if microversion(request) >= (1, 2):
        force = request.query_params.get("force", "false").strip().lower()
        if force not in _TRUE | _FALSE:
            raise InvalidInput(f"Invalid value for 'force': {force!r}")
        refuse = force in _FALSE
    await run_in_threadpool(
        ctx(request).secrets.delete, caller, request.path_params["secret_id"], refuse_with_consumers=refuse
    )
    return Response(status_code=204)


@operation("Secret(s) retrieval")
async def list_secrets(request: Request) -> Response:
    caller = await authenticate(request)
    offset, limit = paging(request)
    query = _list_query(request, caller.project_id, offset, limit)
    with_consumers = microversion(request) >= (1, 1)
    if request.query_params.get("acl_only", "").lower() == "true":
        # Secrets of any project shared with the caller through their read ACL.
        query.acl_user = caller.user_id or ""
    context = ctx(request)
    views, total = await run_read(context, context.secrets.list_secrets, caller, query, with_consumers=with_consumers)
    base = base_url(request)
    items = [secret_body(base, v, with_consumers=with_consumers) for v in views]
    extra = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
    return json_response(paged_body(request, "secrets", items, total, offset, limit, "secrets", extra))


def _list_query(request: Request, project_id: str, offset: int, limit: int) -> SecretQuery:
    params = request.query_params
    query = SecretQuery(project_id=project_id, now=ctx(request).clock.now(), offset=offset, limit=limit)
    query.name = query_text(request, "name")
    query.algorithm = query_text(request, "alg")
    query.mode = query_text(request, "mode")
    bits = params.get("bits")
    if bits is not None:
        try:
            query.bit_length = int(bits)
        except ValueError:
            pass  # Barbican ignores a non-integer bits filter
        else:
            if not INT32_MIN <= query.bit_length <= INT32_MAX:  # the column's range (PostgreSQL: 500 past it)
                raise InvalidInput(BAD_QUERY)
    secret_type = params.get("secret_type")
    if secret_type:
        if secret_type not in SECRET_TYPES:
            raise InvalidInput(BAD_QUERY)
        query.secret_type = secret_type
    for param, column in _TIME_FILTERS.items():
        raw = params.get(param)
        if raw:
            query.time_bounds[column] = _time_bounds(raw)
    sort = params.get("sort")
    if sort:
        query.sort = _sort(sort)
    return query


def _time_bounds(raw: str) -> list[TimeBound]:
    bounds: list[TimeBound] = []
    for term in raw.split(","):
        op, sep, value = term.partition(":")
        if sep and op in ("gt", "gte", "lt", "lte"):
            text = value
        else:
            op, text = "eq", term
        try:
            bounds.append(TimeBound(op, parse_iso8601(text)))
        except ValueError:
            raise InvalidInput(BAD_QUERY) from None
    ops = [b.op for b in bounds]
    lower = sum(op in ("gt", "gte") for op in ops)
    upper = sum(op in ("lt", "lte") for op in ops)
    if lower > 1 or upper > 1 or ("eq" in ops and len(ops) > 1):
        raise InvalidInput(BAD_QUERY)
    return bounds


def _sort(raw: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for term in raw.split(","):
        key, _, direction = term.strip().partition(":")
        direction = direction.strip().lower() or "asc"
        if key not in _SORT_KEYS or key in seen or direction not in ("asc", "desc"):
            raise InvalidInput(BAD_QUERY)
        seen.add(key)
        column = _SORT_COLUMNS.get(key, key)
        if column is not None:  # every secret is ACTIVE: sorting by status orders nothing
            out.append((column, direction == "desc"))
    return out
