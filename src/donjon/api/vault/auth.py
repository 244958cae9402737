"""Who calls the Vault API: the token in ``X-Vault-Token`` or ``Authorization: Bearer``, by the server's auth mode.

- token mode: a donjon token (``djt_…``, ``donjon token create``), the same as Barbican's ``X-Auth-Token``;
- keystone mode: a Keystone token, validated (and cached) as on the Barbican side;
- dev mode (loopback only): the token *names the project*: ``BAO_TOKEN=demo bao kv get secret/x`` acts in
  project ``demo`` with the ``admin`` role, as ``X-Project-Id: demo`` does on the Barbican side (an explicit
  ``X-Project-Id``/``X-Roles`` pair wins, for tests that need another role).

A token's project is its namespace: ``X-Vault-Namespace`` may name it (or be absent); any other namespace
is refused. Any failure is Vault's bare 403 ``permission denied``; the token's text is never logged or echoed.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from donjon.api.audit_middleware import announce_effect
from donjon.api.common import ctx
from donjon.api.vault.errors import permission_denied
from donjon.auth import Caller
from donjon.auth.dev import caller_from_headers
from donjon.auth.tokens import TokenRecord
from donjon.errors import DonjonError

_MAX_TOKEN_CHARS = 4096


def token_of(request: Request) -> str | None:
    """The bearer token of a Vault request: ``X-Vault-Token`` first, as Vault reads them."""
    token = request.headers.get("x-vault-token")
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    return token


@dataclass(frozen=True)
class VaultIdentity:
    """The authenticated caller and the mode that vouched for it (``token_mode``: a donjon-issued token).

    ``record`` is the token's row when this request read it: always for a use-limited token, whose row then
    shows the uses left after this request (``auth/token/lookup-self`` reports them; the last use revoked it,
    so it can no longer be looked up).
    """

    caller: Caller
    token_mode: bool
    record: TokenRecord | None = None


async def authenticate(request: Request) -> VaultIdentity:
    token = token_of(request)
    if token is None:
        raise permission_denied()
    context = ctx(request)
    cached = context.tokens.cached(token) if context.tokens is not None else None
    if context.tokens is not None and cached is None:
        # Its row is read, and a use-limited token's use spent: the request's pending audit event goes first.
        await announce_effect(request)
    try:
        if cached is not None:
            identity = VaultIdentity(cached, token_mode=True)
        elif context.tokens is not None:
            used = context.tokens.authenticate_use(token)
            identity = VaultIdentity(used.caller, token_mode=True, record=used.record)
        elif context.keystone is not None:
            caller = context.keystone.cached(token)
            if caller is None:
                caller = await run_in_threadpool(context.keystone.validate, token)
            identity = VaultIdentity(caller, token_mode=False)
        elif request.headers.get("x-project-id"):
            identity = VaultIdentity(caller_from_headers(request.headers), token_mode=False)
        else:
            identity = VaultIdentity(caller_from_headers({"x-project-id": token}), token_mode=False)
    except DonjonError:
        raise permission_denied() from None
    namespace = request.headers.get("x-vault-namespace", "").strip().strip("/")
    if namespace and namespace != identity.caller.project_id:
        # A token's project is its namespace: it may name that one, and no other.
        raise permission_denied()
    request.state.caller = identity.caller  # the initiator of the request's audit event (donjon.audit)
    return identity
