"""Authorisation before validation (issue 15, item 7): a caller who may not act learns nothing from our
validation messages.

Barbican decides the policy before it reads the body (``enforce_rbac`` wraps each controller method, then
``enforce_content_types`` and ``load_body``). donjon's services decide the policy first too, but the body is
parsed before the service is called. Each guard below wraps that parsing: when it refuses the body (400, 415,
413, 409), the request's rule is decided first (services.access.AccessCheck, read-only), so a caller who may
not act gets the 403 or 404 a valid body would have got. A caller who may act gets the refusal itself. A
valid body costs nothing more: its service call decides the policy as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from donjon.api.common import authenticate, ctx, read_json
from donjon.auth import Caller
from donjon.errors import Conflict, InvalidInput, TooLarge, UnsupportedMediaType

# What parsing and validating a body raise; anything else (a 403/404 of the service itself, a 503) passes.
_REFUSALS = (InvalidInput, UnsupportedMediaType, TooLarge, Conflict)

T = TypeVar("T")


@asynccontextmanager
async def _policy_first(check: Callable[[], None]) -> AsyncIterator[None]:
    try:
        yield
    except _REFUSALS:
        await run_in_threadpool(check)  # raises Forbidden or NotFound when the caller may not act
        raise


def rule_first(request: Request, caller: Caller, rule: str, operation: str) -> AbstractAsyncContextManager[None]:
    """For a collection (``POST /v1/secrets``, ``/v1/containers``, ``/v1/orders``, project quotas)."""
    access = ctx(request).access
    return _policy_first(lambda: access.rule(caller, rule, operation))


def secret_first(request: Request, caller: Caller, rule: str, operation: str) -> AbstractAsyncContextManager[None]:
    """For ``/v1/secrets/{secret_id}/…``: the secret's look-up and rule, 404 as for a missing one."""
    access, secret_id = ctx(request).access, request.path_params["secret_id"]
    return _policy_first(lambda: access.secret(caller, secret_id, rule, operation))


def container_first(request: Request, caller: Caller, rule: str, operation: str) -> AbstractAsyncContextManager[None]:
    """For ``/v1/containers/{container_id}/…``."""
    access, container_id = ctx(request).access, request.path_params["container_id"]
    return _policy_first(lambda: access.container(caller, container_id, rule, operation))


async def secret_json(request: Request, rule: str, operation: str, parse: Callable[[Any], T]) -> tuple[Caller, T]:
    """The caller and the JSON body ``parse`` makes of it, under ``secret_first``."""
    caller = await authenticate(request)
    async with secret_first(request, caller, rule, operation):
        return caller, parse(await read_json(request))


async def container_json(request: Request, rule: str, operation: str, parse: Callable[[Any], T]) -> tuple[Caller, T]:
    """The caller and the JSON body ``parse`` makes of it, under ``container_first``."""
    caller = await authenticate(request)
    async with container_first(request, caller, rule, operation):
        return caller, parse(await read_json(request))
