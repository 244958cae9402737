"""Standalone bearer tokens: issued by donjon, stored only as keyed hashes, checked in constant time.

A token reads ``djt_<id>_<secret>``: the id finds the row, the secret is proven by comparing
HMAC-SHA256(token key, id ‖ secret) with the stored digest (``hmac.compare_digest``). The token key lives
in a 0600 file beside the data (shared by all nodes of a deployment); a database dump alone yields no token.

Validated tokens are cached per process for ``cache_seconds``: a revocation takes effect on every node
within that delay. A use-limited token (Vault's ``num_uses``) is never cached: each authenticated request
spends one use in the database, and the last use revokes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from donjon.auth.context import Caller
from donjon.cache import ExpiringCache
from donjon.errors import InvalidInput, Unauthorized
from donjon.files import load_key_file
from donjon.storage import tokens as repo
from donjon.storage.database import Database

# Re-exported (``as``): the Vault API describes a token from its row.
from donjon.storage.tokens import TokenRecord as TokenRecord
from donjon.timeutil import SYSTEM_CLOCK, Clock

_TOKEN = re.compile(r"^djt_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
_KEY_BYTES = 32
_MAX_CACHE_ENTRIES = 10_000


def load_token_key(path: Path, *, create: bool) -> bytes:
    return load_key_file(path, create=create, what="token key", size=_KEY_BYTES)


def _digest(key: bytes, token_id: str, secret: str) -> str:
    return hmac.new(key, f"{token_id}\x00{secret}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    record: repo.TokenRecord
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.record.id!r})"


@dataclass(frozen=True)
class Authenticated:
    """A request's caller, and the token's row when it was read for this request (None: from the cache).

    A use-limited token's row is always read, and shows the uses left after this request's (0: it was the
    last, and the token is now revoked).
    """

    caller: Caller
    record: repo.TokenRecord | None


class TokenService:
    def __init__(self, db: Database, key: bytes, *, cache_seconds: float = 10.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self._clock = clock
        self._key = key
        # digest -> caller; never past the token's own expiry
        self._cache: ExpiringCache[str, Caller] = ExpiringCache(
            maxsize=_MAX_CACHE_ENTRIES, ttl=cache_seconds, timer=clock.monotonic
        )

    def issue(
        self,
        *,
        project_id: str,
        user_id: str,
        roles: list[str],
        ttl: timedelta | None,
        description: str | None = None,
        num_uses: int = 0,
    ) -> IssuedToken:
        if not project_id or not user_id or not roles:
            raise InvalidInput("a token needs a project, a user and at least one role")
        if num_uses < 0:
            raise InvalidInput("number of uses cannot be negative")
        token_uuid = uuid.uuid4()
        secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        now = self._clock.now()
        record = repo.TokenRecord(
            id=str(token_uuid),
            digest=_digest(self._key, str(token_uuid), secret),
            project_id=project_id,
            user_id=user_id,
            roles=tuple(r.strip().lower() for r in roles),
            description=description,
            created_at=now,
            expires_at=now + ttl if ttl is not None else None,
            revoked_at=None,
            num_uses=num_uses,
            uses_left=num_uses,
        )
        with self._db.write() as conn:
            repo.insert_token(conn, record)
        return IssuedToken(record, f"djt_{token_uuid.hex}_{secret}")

    def bootstrap(self, *, project_id: str, user_id: str) -> IssuedToken | None:
        """The first admin token, only while no token exists at all."""
        with self._db.read() as conn:
            if repo.count_tokens(conn):
                return None
        return self.issue(project_id=project_id, user_id=user_id, roles=["admin"], ttl=None, description="bootstrap")

    def authenticate(self, token: str) -> Caller:
        return self.authenticate_use(token).caller

    def cached(self, token: str) -> Caller | None:
        """The caller of ``token`` if it was validated lately (no database, no effect); None otherwise, when
        ``authenticate_use`` reads its row and, for a use-limited token, spends a use."""
        parsed = self._parse(token)
        return self._cache.get(parsed[1]) if parsed is not None else None

    def _parse(self, token: str) -> tuple[str, str] | None:
        """(token id, keyed digest of the token) of a well-formed token, else None."""
        m = _TOKEN.match(token.strip())
        if m is None:
            return None
        token_id = str(uuid.UUID(m.group(1)))
        return token_id, _digest(self._key, token_id, m.group(2))

    def authenticate_use(self, token: str) -> Authenticated:
        """Authenticate one request: a use-limited token spends a use (and is revoked by its last)."""
        parsed = self._parse(token)
        if parsed is None:
            raise Unauthorized("The request you have made requires authentication.")
        token_id, digest = parsed
        cached = self._cache.get(digest)
        if cached is not None:
            return Authenticated(cached, None)
        record = self._valid_record(token_id, digest)
        caller = Caller(project_id=record.project_id, user_id=record.user_id, roles=record.roles)
        if record.num_uses:
            now = self._clock.now()
            with self._db.write() as conn:
                uses_left = repo.use_once(conn, record.id, now)
            if uses_left is None:  # a concurrent request spent the last use
                raise Unauthorized("The request you have made requires authentication.")
            spent = replace(record, uses_left=uses_left, revoked_at=now if uses_left == 0 else None)
            return Authenticated(caller, spent)
        left = (record.expires_at - self._clock.now()).total_seconds() if record.expires_at is not None else None
        self._cache.put(digest, caller, left)
        return Authenticated(caller, record)

    def describe(self, token: str) -> repo.TokenRecord:
        """The row of a valid token, read now (not from the cache): its expiry, roles, description."""
        m = _TOKEN.match(token.strip())
        if m is None:
            raise Unauthorized("The request you have made requires authentication.")
        token_id = str(uuid.UUID(m.group(1)))
        return self._valid_record(token_id, _digest(self._key, token_id, m.group(2)))

    def _valid_record(self, token_id: str, digest: str) -> repo.TokenRecord:
        with self._db.read() as conn:
            record = repo.get_token(conn, token_id)
        now = self._clock.now()
        if (
            record is None
            or not hmac.compare_digest(record.digest, digest)
            or record.revoked_at is not None
            or (record.num_uses > 0 and record.uses_left <= 0)
            or (record.expires_at is not None and record.expires_at <= now)
        ):
            raise Unauthorized("The request you have made requires authentication.")
        return record

    def renew(self, token_id: str, expires_at: datetime) -> bool:
        """Move a live token's expiry (Vault's renew-self); every node sees it once its cache entry ends."""
        with self._db.write() as conn:
            return repo.set_expiry(conn, token_id, expires_at)

    def list_tokens(self, project_id: str | None = None) -> list[repo.TokenRecord]:
        with self._db.read() as conn:
            return repo.list_tokens(conn, project_id)

    def revoke(self, token_id: str) -> bool:
        with self._db.write() as conn:
            revoked = repo.revoke(conn, token_id, self._clock.now())
        self._cache.clear()
        return revoked


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``30d``."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if m is None or int(m.group(1)) == 0:
        raise InvalidInput(f"invalid duration {text!r}: use a number and s, m, h or d (e.g. 24h)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def expires_in(record: repo.TokenRecord, now: datetime) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is None:
        return "never"
    left = record.expires_at - now
    return "expired" if left.total_seconds() <= 0 else f"{int(left.total_seconds())}s"
