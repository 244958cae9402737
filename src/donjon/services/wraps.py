"""Wrapped hand-off (a donjon extension): a single-use, short-lived token that fetches a secret's payload
once, without any other credential. Only a keyed hash of the token is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.errors import Conflict, Forbidden, InvalidInput, NotFound
from donjon.policy import Policy
from donjon.services import access
from donjon.services.commands import PayloadFormat
from donjon.services.lifecycle import LifecycleDeps, LifecycleService
from donjon.services.limited_reads import serve_current
from donjon.storage import wraps as wraps_repo

_WRAP_TOKEN = re.compile(r"^djw_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
_WRAP_NOT_FOUND = "Wrap token not found."


def wrap_key(token_key: bytes) -> bytes:
    """The key of wrap tokens' hashes, derived from the token key file (kept apart from API tokens')."""
    return hmac.new(token_key, b"donjon/wrap-token/v1", hashlib.sha256).digest()


def _creator_json(caller: Caller) -> str:
    return json.dumps(
        {
            "project_id": caller.project_id,
            "user_id": caller.user_id,
            "roles": list(caller.roles),
            "system_scope": caller.system_scope,
        }
    )


def _creator_from_json(raw: str) -> Caller:
    data = json.loads(raw)
    return Caller(
        project_id=data["project_id"],
        user_id=data["user_id"],
        roles=tuple(data["roles"]),
        system_scope=data["system_scope"],
    )


@dataclass(frozen=True)
class WrappedToken:
    token: str = field(repr=False)
    expires: datetime


class WrapService(LifecycleService):
    def __init__(self, deps: LifecycleDeps, policy: Policy, *, wrap_key: bytes) -> None:
        super().__init__(deps)
        self._policy = policy
        self._wrap_key = wrap_key

    def wrap(self, caller: Caller, secret_id: str, ttl: int | None) -> WrappedToken:
        if ttl is None:
            ttl = self._config.wrap_default_ttl_seconds
        if not 1 <= ttl <= self._config.wrap_max_ttl_seconds:
            raise InvalidInput(f"'ttl' must be 1 to {self._config.wrap_max_ttl_seconds} seconds")
        # Wrapping hands the payload on: it needs the right to read the payload.
        record = access.exportable_secret(
            self._db, self._policy, caller, secret_id, "secret:decrypt", "Secret wrapping", now=self._clock.now()
        )
        if not record.has_payload:
            raise NotFound("Not Found. Sorry but your secret has no payload.")
        token_uuid = uuid.uuid4()
        secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        now = self._clock.now()
        expires = now + timedelta(seconds=ttl)
        limit = self._config.wrap_max_outstanding
        with self._db.write() as conn:
            # The secret's row is locked while its tokens are counted, so concurrent wraps cannot exceed the
            # bound, and a secret deleted meanwhile is a 404 (not a foreign-key error).
            if not wraps_repo.lock_live_secret(conn, record.id, now):
                raise NotFound("Secret not found.")
            if wraps_repo.outstanding_wraps(conn, record.id, now) >= limit:
                raise Conflict(
                    f"The secret has {limit} wrap tokens outstanding, the most allowed: "
                    "wait for one to be used or to expire."
                )
            wraps_repo.insert_wrap(
                conn,
                wrap_id=str(token_uuid),
                digest=self._digest(str(token_uuid), secret),
                secret_id=record.id,
                project_id=record.project_id,
                creator=_creator_json(caller),
                now=now,
                expires=expires,
            )
        return WrappedToken(f"djw_{token_uuid.hex}_{secret}", expires)

    def unwrap(self, token: str | None, fmt: PayloadFormat) -> tuple[bytes, str]:
        """The payload behind a wrap token, once. Every refusal is the same 404 (no oracle).

        The token's creator must still be allowed to read the payload (``secret:decrypt`` on the secret as
        it is now: owner, creator, project access, read ACL): a token made by a user whose ACL entry was
        removed since is spent and refused, so it never outlives that access.
        """
        m = _WRAP_TOKEN.match((token or "").strip())
        if m is None:
            raise NotFound(_WRAP_NOT_FOUND)
        wrap_id, secret = str(uuid.UUID(m.group(1))), m.group(2)
        digest = self._digest(wrap_id, secret)
        now = self._clock.now()
        with self._db.write() as conn:
            found = wraps_repo.find_wrap(conn, wrap_id)
            if found is None:
                raise NotFound(_WRAP_NOT_FOUND)
            if not hmac.compare_digest(found.digest, digest) or found.expires_at <= now:
                raise NotFound(_WRAP_NOT_FOUND)
            # Exactly one caller deletes the row; a failure below rolls the token back with the transaction.
            if not wraps_repo.spend_wrap(conn, wrap_id, now):
                raise NotFound(_WRAP_NOT_FOUND)
            if self._creator_may_read(conn, found):
                return serve_current(conn, self._payloads, found.secret_id, fmt, now)
        # Committed: the token stays spent, whatever the creator's access becomes later.
        raise NotFound(_WRAP_NOT_FOUND)

    def view(self, token: str | None) -> wraps_repo.WrapView:
        """What a live wrap token stands for, without spending it (Vault's ``sys/wrapping/lookup``): the same
        404 as ``unwrap`` for anything that would not unwrap by its text alone."""
        m = _WRAP_TOKEN.match((token or "").strip())
        if m is None:
            raise NotFound(_WRAP_NOT_FOUND)
        wrap_id, secret = str(uuid.UUID(m.group(1))), m.group(2)
        with self._db.read() as conn:
            found = wraps_repo.view_wrap(conn, wrap_id)
        if (
            found is None
            or not hmac.compare_digest(found.digest, self._digest(wrap_id, secret))
            or found.expires_at <= self._clock.now()
        ):
            raise NotFound(_WRAP_NOT_FOUND)
        return found

    def _creator_may_read(self, conn: Connection, wrap: wraps_repo.Wrap) -> bool:
        creator = _creator_from_json(wrap.creator)
        try:
            access.secret_for(
                conn,
                self._policy,
                creator,
                wrap.secret_id,
                "secret:decrypt",
                "Secret unwrapping",
                now=self._clock.now(),
            )
        except (NotFound, Forbidden):
            return False
        return True

    def _digest(self, wrap_id: str, secret: str) -> str:
        return hmac.new(self._wrap_key, f"{wrap_id}\x00{secret}".encode(), hashlib.sha256).hexdigest()
