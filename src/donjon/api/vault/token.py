"""``auth/token/``: lookup-self, renew-self, revoke-self and create, on donjon's own tokens.

A Vault *policy* is a donjon *role* here: a token's ``policies`` are ``default`` (which every non-root Vault
token has) and its roles; ``token create -policy=member`` asks for a child with the ``member`` role. A child
gets only roles its parent holds, in the parent's project, and never outlives its parent (donjon tokens have
no revocation tree, so the expiry is what bounds a child). ``num_uses`` makes a use-limited child: each
authenticated request spends a use (donjon.auth.tokens), the last one revokes it, and ``lookup-self`` reports
the uses left after its own as Vault does (``-1`` when it spent the last). A use-limited token creates no
children: without a revocation tree, a child would outlive the parent's limit.

In dev and keystone modes there is nothing to create, renew or revoke: lookup-self describes the caller and
the other operations answer 400.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from donjon.api.common import ctx
from donjon.api.vault import durations, responses
from donjon.api.vault.auth import VaultIdentity, token_of
from donjon.api.vault.errors import VaultError, bad_request, multierror
from donjon.api.vault.router import Handler, PathTable, VaultCall
from donjon.auth.tokens import TokenRecord, TokenService
from donjon.errors import DonjonError

# Vault's default and maximum token TTL (the system's max_lease_ttl): 32 days.
MAX_TTL = timedelta(hours=768)
_NOT_TOKEN_MODE = "donjon serves token creation, renewal and revocation in its token auth mode only"
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9._ -]{0,64}$")


def _unix(moment: datetime) -> int:
    return int(_aware(moment).timestamp())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _aware(moment).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def policies_of(roles: tuple[str, ...]) -> list[str]:
    return sorted({"default", *roles})


def _accessor(record_id: str) -> str:
    """The token's row id: not secret (it is inside the token's text) and enough to name it to an admin."""
    return record_id.replace("-", "")[:24]


def _tokens(call: VaultCall) -> TokenService:
    tokens = ctx(call.request).tokens
    if tokens is None:
        raise bad_request(_NOT_TOKEN_MODE)
    return tokens


def _token_data(record: TokenRecord, token: str, now: datetime) -> dict[str, Any]:
    created = _aware(record.created_at)
    expires = _aware(record.expires_at) if record.expires_at is not None else None
    return {
        "accessor": _accessor(record.id),
        "creation_time": _unix(created),
        "creation_ttl": int((expires - created).total_seconds()) if expires is not None else 0,
        "display_name": record.description or "token",
        "entity_id": "",
        "expire_time": _rfc3339(expires),
        "explicit_max_ttl": 0,
        "id": token,
        "issue_time": _rfc3339(created),
        "meta": {"project_id": record.project_id, "user_id": record.user_id},
        "num_uses": _uses_left(record),
        "orphan": True,
        "path": "auth/token/create",
        "policies": policies_of(record.roles),
        "renewable": expires is not None,
        "ttl": max(int((expires - now).total_seconds()), 0) if expires is not None else 0,
        "type": "service",
    }


def _uses_left(record: TokenRecord) -> int:
    """Vault's ``num_uses`` in a lookup: 0 unlimited, else the uses left (-1: this request spent the last)."""
    if not record.num_uses:
        return 0
    return record.uses_left if record.uses_left > 0 else -1


def _caller_data(identity: VaultIdentity, token: str) -> dict[str, Any]:
    """Dev and keystone modes: the caller as a token without expiry donjon knows of."""
    caller = identity.caller
    return {
        "accessor": "",
        "creation_time": 0,
        "creation_ttl": 0,
        "display_name": "token",
        "entity_id": "",
        "expire_time": None,
        "explicit_max_ttl": 0,
        "id": token,
        "issue_time": None,
        "meta": {"project_id": caller.project_id, "user_id": caller.user_id or ""},
        "num_uses": 0,
        "orphan": True,
        "path": "auth/token/create",
        "policies": policies_of(caller.roles),
        "renewable": False,
        "ttl": 0,
        "type": "service",
    }


def _auth_block(record: TokenRecord, token: str, lease: int) -> dict[str, Any]:
    policies = policies_of(record.roles)
    return {
        "client_token": token,
        "accessor": _accessor(record.id),
        "policies": policies,
        "token_policies": policies,
        "metadata": {"project_id": record.project_id, "user_id": record.user_id},
        "lease_duration": lease,
        "renewable": record.expires_at is not None,
        "entity_id": "",
        "token_type": "service",
        "orphan": True,  # no revocation tree: every donjon token stands alone
        "mfa_requirement": None,
        "num_uses": record.num_uses,  # as Vault: the token's limit as issued, not the uses left
    }


def _own_token(call: VaultCall) -> str:
    token = token_of(call.request)
    assert token is not None  # identity() succeeded
    return token


async def _own_record(call: VaultCall, tokens: TokenService) -> TokenRecord:
    """The caller's token row: as this request's authentication left it, or read now (a cached token)."""
    identity = await call.identity()
    if identity.record is not None:
        return identity.record
    return await run_in_threadpool(tokens.describe, _own_token(call))


def _num_uses(params: dict[str, Any]) -> int:
    """``num_uses`` as Vault's weak decoding takes it: an integer, or a string of one; negative is refused."""
    value = params.get("num_uses")
    if value is None or value == "":
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,18}", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request("Error decoding request: cannot parse 'num_uses' as int")
    if value < 0:
        raise bad_request("number of uses cannot be negative")
    return value


async def _subject(call: VaultCall, params: dict[str, Any], *, by_body: bool) -> tuple[str, TokenRecord | None]:
    """The token an operation is about: the caller's own (``*-self``) or the body's ``token``.

    Naming a token in the body grants nothing its text does not already: whoever holds a token can look it
    up, renew or revoke it with ``*-self``. So any valid caller may do it; an unknown token is ``bad token``.
    """
    identity = await call.identity()
    if not by_body:
        token = _own_token(call)
        if identity.record is not None:  # read (and for a use-limited token, spent) by this request
            return token, identity.record
    else:
        given = params.get("token")
        if not isinstance(given, str) or not given:
            raise bad_request("missing token")
        token = given
    if not identity.token_mode:
        return token, None
    tokens = _tokens(call)
    try:
        return token, await run_in_threadpool(tokens.describe, token)
    except DonjonError:
        raise VaultError(403, "bad token") from None


async def _lookup(call: VaultCall, by_body: bool) -> Response:
    params = await call.json() if by_body else {}
    token, record = await _subject(call, params, by_body=by_body)
    if record is None:
        return responses.logical(call.request, _caller_data(await call.identity(), token))
    return responses.logical(call.request, _token_data(record, token, _aware(ctx(call.request).clock.now())))


async def _renew(call: VaultCall, by_body: bool) -> Response:
    params = await call.json()
    token, record = await _subject(call, params, by_body=by_body)
    if record is None or record.expires_at is None:
        raise bad_request("lease is not renewable")
    now = ctx(call.request).clock.now()  # naive UTC, as the rows
    increment = durations.seconds(params.get("increment", 0))
    wanted = timedelta(seconds=increment) if increment > 0 else record.expires_at - record.created_at
    expires = min(now + wanted, record.created_at + MAX_TTL)
    if not await run_in_threadpool(_tokens(call).renew, record.id, expires):
        raise VaultError(403, multierror("permission denied"))
    lease = max(int((expires - now).total_seconds()), 0)
    return responses.logical(call.request, None, auth=_auth_block(record, token, lease))


async def _revoke(call: VaultCall, by_body: bool) -> Response:
    params = await call.json() if by_body else {}
    _, record = await _subject(call, params, by_body=by_body)
    if record is None:
        raise bad_request(_NOT_TOKEN_MODE)
    await run_in_threadpool(_tokens(call).revoke, record.id)
    return responses.no_content()


def _on(operation: Callable[..., Awaitable[Response]], *, by_body: bool) -> Handler:
    """One route handler per (operation, subject) pair: ``*-self`` acts on the caller's own token,
    the plain form on the token named in the body."""

    async def handler(call: VaultCall, match: re.Match[str]) -> Response:
        return await operation(call, by_body=by_body)

    return handler


def _requested_roles(params: dict[str, Any], parent: TokenRecord) -> tuple[str, ...]:
    policies = params.get("policies")
    if policies is None:
        policies = []
    if isinstance(policies, str):
        policies = [p for p in policies.split(",") if p.strip()]
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise bad_request('error converting input for field "policies": expected a list of policy names')
    wanted = {p.strip().lower() for p in policies} - {"default"}
    if "root" in wanted:
        raise VaultError(403, multierror("permission denied"))
    if not wanted:
        return parent.roles  # Vault: a child without policies gets its parent's
    if not wanted <= set(parent.roles):
        raise bad_request("child policies must be subset of parent")
    return tuple(sorted(wanted))


async def _create(call: VaultCall, match: re.Match[str]) -> Response:
    identity = await call.identity()
    params = await call.json()
    if not identity.token_mode:
        raise bad_request(_NOT_TOKEN_MODE)
    tokens = _tokens(call)
    parent = await _own_record(call, tokens)
    roles = _requested_roles(params, parent)
    num_uses = _num_uses(params)
    if parent.num_uses:
        raise bad_request("a use-limited token cannot create child tokens")
    display = str(params.get("display_name") or "")
    if not _DISPLAY_NAME.match(display):
        raise bad_request("display_name may hold letters, digits, '.', '_', '-' and spaces (64 at most)")
    ttl = durations.seconds(params.get("ttl") or 0)
    if ttl < 0:
        raise bad_request("ttl must not be negative")
    now = ctx(call.request).clock.now()
    lifetime = min(timedelta(seconds=ttl) if ttl else MAX_TTL, MAX_TTL)
    if parent.expires_at is not None:
        lifetime = min(lifetime, parent.expires_at - now)  # a child never outlives its parent
    issued = await run_in_threadpool(
        lambda: tokens.issue(
            project_id=parent.project_id,
            user_id=parent.user_id,
            roles=list(roles),
            ttl=lifetime,
            description=f"token-{display}" if display else "token",
            num_uses=num_uses,
        )
    )
    auth = _auth_block(issued.record, issued.token, int(lifetime.total_seconds()))
    return responses.logical(call.request, None, auth=auth)


ENGINE = PathTable()
_LOOKUP_SELF = _on(_lookup, by_body=False)
ENGINE.route("lookup-self", read=_LOOKUP_SELF, write=_LOOKUP_SELF)
ENGINE.route("renew-self", write=_on(_renew, by_body=False))
ENGINE.route("revoke-self", write=_on(_revoke, by_body=False))
ENGINE.route("create", write=_create)
ENGINE.route("lookup", write=_on(_lookup, by_body=True))
ENGINE.route("renew", write=_on(_renew, by_body=True))
ENGINE.route("revoke", write=_on(_revoke, by_body=True))
