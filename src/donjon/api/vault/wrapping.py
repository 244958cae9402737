"""Response wrapping (``X-Vault-Wrap-TTL``, ``sys/wrapping/*``) on donjon's own primitives.

A wrapped answer is kept as a donjon secret of the caller's project: a limited secret (``max_reads = 1``)
that expires with the wrap's TTL, named ``vault-wrap:<creation path>``, whose payload is the answer (sealed
like every payload). The wrapping token is a donjon wrap token on that secret (``POST /v1/secrets/{id}/wrap``
makes the same kind): unwrapping spends the token and the secret's one read, which deletes it, so an answer is
unwrapped once, and an unused one goes when it expires. Making the secret is a secret creation: the caller
needs ``secrets:post`` and the project's quota counts it until it is gone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from donjon.api.common import ctx
from donjon.api.payload_types import AcceptHeader
from donjon.api.vault import durations, responses
from donjon.api.vault.auth import token_of
from donjon.api.vault.errors import VaultError, bad_request
from donjon.auth import Caller
from donjon.errors import NotFound
from donjon.services.commands import NewSecret

INVALID = "wrapping token is not valid or does not exist"
_NAME = "vault-wrap:"
_MAX_NAME = 255


def _rfc3339(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def wrap_ttl(request: Request) -> int | None:
    """Seconds asked by ``X-Vault-Wrap-TTL`` (None: no wrapping); Vault's 400 for a bad value."""
    raw = request.headers.get("x-vault-wrap-ttl")
    if raw is None or raw.strip() == "":
        return None
    try:
        ttl = durations.seconds(raw)
    except VaultError:
        raise bad_request(f'error parsing X-Vault-Wrap-TTL header: time: invalid duration "{raw}"') from None
    if ttl <= 0:
        raise bad_request(f'error parsing X-Vault-Wrap-TTL header: time: invalid duration "{raw}"')
    return ttl


def _wrap_sync(request: Request, caller: Caller, answer: dict[str, Any], ttl: int, creation_path: str) -> Response:
    context = ctx(request)
    limit = context.settings.lifecycle.wrap_max_ttl_seconds
    if ttl > limit:  # checked before the answer is kept, so a refused wrap leaves nothing behind
        raise bad_request(f"wrapping TTL is longer than the largest allowed ({limit} seconds)")
    now = context.clock.now()
    document = {"creation_path": creation_path, "creation_ttl": ttl, "answer": answer}
    new = NewSecret(
        name=(_NAME + creation_path)[:_MAX_NAME],
        content_type="text/plain",
        payload=json.dumps(document, separators=(",", ":")).encode("utf-8"),
        max_reads=1,
        expiration=now + timedelta(seconds=ttl + 1),
    )
    record = context.secrets.create(caller, new)
    wrapped = context.wraps.wrap(caller, record.id, ttl)
    info = {
        "token": wrapped.token,
        "accessor": record.id.replace("-", "")[:24],
        "ttl": ttl,
        "creation_time": _rfc3339(wrapped.expires - timedelta(seconds=ttl)),  # the wrap token's own start
        "creation_path": creation_path,
    }
    body = {
        "request_id": "",
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": None,
        "wrap_info": info,
        "warnings": None,
        "auth": None,
    }
    return responses.json_body(body)


async def wrap(request: Request, caller: Caller, answer: dict[str, Any], ttl: int, creation_path: str) -> Response:
    """The wrap_info answer standing for ``answer`` (a logical answer's JSON)."""
    return await run_in_threadpool(_wrap_sync, request, caller, answer, ttl, creation_path)


def _unwrap_sync(request: Request, token: str) -> dict[str, Any]:
    context = ctx(request)
    try:
        payload, _ = context.wraps.unwrap(token, AcceptHeader("text/plain"))
    except NotFound:
        raise bad_request(INVALID) from None
    document: dict[str, Any] = json.loads(payload)
    return document


async def unwrap_document(request: Request, token: str) -> dict[str, Any]:
    """What a wrapping token stands for (spent now): creation path, TTL and the answer."""
    return await run_in_threadpool(_unwrap_sync, request, token)


def _lookup_sync(request: Request, token: str) -> dict[str, Any]:
    context = ctx(request)
    try:
        view = context.wraps.view(token)
    except NotFound:
        raise bad_request(INVALID) from None
    if not (view.secret_name or "").startswith(_NAME):
        raise bad_request(INVALID)  # a wrap token of the Barbican API: not a wrapped Vault answer
    return {
        "creation_path": (view.secret_name or "")[len(_NAME) :],
        "creation_time": _rfc3339(view.created_at),
        "creation_ttl": round((view.expires_at - view.created_at).total_seconds()),
    }


async def lookup(request: Request, token: str) -> dict[str, Any]:
    """A wrapping token's creation path, time and TTL, without spending it."""
    return await run_in_threadpool(_lookup_sync, request, token)


def wrapping_token(request: Request, params: dict[str, Any]) -> tuple[str, bool]:
    """The wrapping token of an unwrap: the body's ``token``, else the request's own token (True: from the body)."""
    given = params.get("token")
    if isinstance(given, str) and given:
        return given, True
    own = token_of(request)
    if own is None:
        raise VaultError(403, "permission denied")
    return own, False
