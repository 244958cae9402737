"""The life of a secret after creation (donjon extensions to Barbican's API).

- Limited secrets (``max_reads``): each payload read spends one read in the same transaction that reads
  the ciphertext; the read that spends the last one also deletes the secret. Concurrent readers race on
  one conditional UPDATE, so a 1-read secret is served exactly once.
- Wrapped hand-off: a single-use, short-lived token that fetches a secret's payload once, without any
  other credential. Only a keyed hash of the token is stored.
- Versions: a new payload becomes current, the previous one stays readable for a grace period.
- The reaper deletes expired secrets (leaving a tombstone), versions past their grace period, expired
  wrap tokens and old tombstones.
- Purging a project destroys its KEKs first, in their own transaction, then its rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.config import LifecycleConfig
from donjon.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge, Unavailable
from donjon.policy import Policy
from donjon.services import access, payloads
from donjon.services.payload_store import NO_PAYLOAD, PayloadStore, discard
from donjon.services.project_keys import ProjectKeys
from donjon.services.stores import StoreRegistry
from donjon.services.validation import optional_string, schema_error
from donjon.storage import lifecycle as repo
from donjon.storage.database import Database
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE
from donjon.timeutil import SYSTEM_CLOCK, Clock

_WRAP_TOKEN = re.compile(r"^djw_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
_WRAP_NOT_FOUND = "Wrap token not found."


def _serve_current(
    conn: Connection, payload_store: PayloadStore, secret_id: str, accept: str | None, now: datetime
) -> tuple[bytes, str]:
    """Inside a write transaction: the current payload; a limited secret spends a read (and goes at zero)."""
    record = repo.current_secret(conn, secret_id)
    if record is None or (record.expiration is not None and record.expiration <= now):
        raise NotFound("Secret not found.")
    if record.content_type is None:
        raise NotFound(NO_PAYLOAD)
    if record.max_reads is None:
        chosen = payloads.negotiate(accept, record.content_type)
        return payloads.render(payload_store.read(record), chosen), chosen
    # Spend first: on PostgreSQL/MariaDB the UPDATE locks the row, so the payload read next is the one this
    # read paid for, and a concurrent reader waits on the lock, then finds no read left (or no row).
    if not repo.take_read(conn, secret_id, now):
        raise NotFound("Secret not found.")
    record = repo.current_secret(conn, secret_id)
    if record is None or record.content_type is None:
        raise NotFound("Secret not found.")
    # Any failure below (406, a KEK that does not open) rolls the spent read back with the transaction.
    chosen = payloads.negotiate(accept, record.content_type)
    body = payloads.render(payload_store.read(record), chosen), chosen
    if record.reads_left is not None and record.reads_left <= 0:
        repo.remove_secret(conn, record, reason=repo.READ_LIMIT, now=now)
    return body


def read_limited(
    db: Database, payload_store: PayloadStore, secret_id: str, accept: str | None, now: datetime
) -> tuple[bytes, str]:
    """Serve a limited secret's payload once, spending one read atomically."""
    with db.write() as conn:
        return _serve_current(conn, payload_store, secret_id, accept, now)


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


@dataclass(frozen=True)
class LifecycleView:
    max_reads: int | None
    reads_left: int | None
    version: int
    version_created: datetime
    previous: list[repo.VersionInfo]


@dataclass
class ReapReport:
    expired: int = 0
    versions: int = 0
    wraps: int = 0
    tombstones: int = 0
    # External stores that could not destroy an expired secret's object during the pass: their expired
    # secrets stay (already 404 through the API) for a later pass, and the rest is reaped meanwhile.
    unavailable_stores: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.expired + self.versions + self.wraps + self.tombstones


class LifecycleService:
    def __init__(
        self,
        db: Database,
        keys: ProjectKeys,
        policy: Policy,
        config: LifecycleConfig,
        *,
        wrap_key: bytes,
        max_secret_bytes: int,
        stores: StoreRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._payloads = PayloadStore(keys, stores)
        self._clock = clock
        self._db = db
        self._policy = policy
        self._config = config
        self._wrap_key = wrap_key
        self._max_secret_bytes = max_secret_bytes

    # --- versions -------------------------------------------------------------------------------------

    def describe(self, caller: Caller, secret_id: str) -> LifecycleView:
        with self._db.read() as conn:
            record = access.secret_for(
                conn, self._policy, caller, secret_id, "secret:get", "Secret retrieval", now=self._clock.now()
            )
            previous = repo.previous_versions(conn, record.id, self._clock.now())
            started = repo.version_started(conn, record.id, record.version) or record.created_at
        return LifecycleView(record.max_reads, record.reads_left, record.version, started, previous)

    def rotate(self, caller: Caller, secret_id: str, body: Any) -> int:
        """Store a new payload as the current version; the previous one stays readable for the grace period."""
        content_type, data = self._new_payload(body)
        with self._db.read() as conn:
            record = access.secret_for(
                conn, self._policy, caller, secret_id, "secret:put", "Secret update", now=self._clock.now()
            )
        if not record.has_payload:
            raise Conflict("Secret has no payload to rotate: store the first one with PUT.")
        if record.max_reads is not None:
            raise Conflict("A secret with max_reads cannot have versions.")
        if record.store_ref is not None:
            raise Conflict("Versions are kept for secrets in the database store only.")
        return self._payloads.retry_if_retired(lambda: self._rotate(record, content_type, data))

    def _rotate(self, record: SecretRecord, content_type: str, data: bytes) -> int:
        version = record.version + 1
        while True:
            # Sealed before the transaction (a KEK unwrap must not hold database locks), bound to the version it
            # becomes; if another rotation came first, sealed again for the version after it.
            sealed = self._payloads.put(replace(record, content_type=content_type, version=version), DATABASE, data)
            assert sealed.kek_id is not None and sealed.ciphertext is not None
            now = self._clock.now()
            with self._db.write() as conn:
                self._payloads.hold(conn, sealed)
                found = repo.current_payload(conn, record.id)
                if found is None or found[1] is None:
                    raise NotFound("Secret not found.")
                current = found[1]
                if current.version + 1 != version:
                    version = current.version + 1
                    continue
                started = repo.version_started(conn, record.id, current.version) or found[0].created_at
                grace = now + timedelta(seconds=self._config.version_grace_seconds)
                if not repo.rotate(
                    conn,
                    current,
                    content_type=content_type,
                    kek_id=sealed.kek_id,
                    ciphertext=sealed.ciphertext,
                    previous_created=started,
                    now=now,
                    grace_until=grace,
                ):
                    raise Conflict("The secret was changed concurrently; try again.")
            return version

    def _new_payload(self, body: Any) -> tuple[str, bytes]:
        if not isinstance(body, dict):
            raise schema_error("Secret Version", "the body is not a JSON object")
        payload = body.get("payload")
        if not isinstance(payload, str) or not payload.strip():
            raise schema_error("Secret Version", "'payload' is a required non-empty string", "payload")
        if len(payload.encode("utf-8")) > self._max_secret_bytes:
            raise TooLarge("Provided information too large to process")
        content_type_raw = optional_string(body, "payload_content_type", "Secret Version", nullable=False)
        if not content_type_raw:
            raise schema_error(
                "Secret Version", "'payload_content_type' is a required property", "payload_content_type"
            )
        encoding = optional_string(body, "payload_content_encoding", "Secret Version", nullable=False)
        if encoding is not None and encoding != "base64":
            raise schema_error("Secret Version", f"'{encoding}' is not one of ['base64']", "payload_content_encoding")
        content_type = payloads.normalize_content_type(content_type_raw)
        return content_type, payloads.decode_payload(payload, content_type, encoding)

    def payload_version(self, caller: Caller, secret_id: str, version: int, accept: str | None) -> tuple[bytes, str]:
        with self._db.read() as conn:
            record = access.secret_for(
                conn,
                self._policy,
                caller,
                secret_id,
                "secret:decrypt",
                "Secret payload retrieval",
                now=self._clock.now(),
            )
            if version != record.version:
                payload = repo.previous_payload(conn, record.id, version, self._clock.now())
                if payload is None:
                    raise NotFound("Secret version not found.")
                chosen = payloads.negotiate(accept, payload.content_type)
                plaintext = self._payloads.read_previous(record, payload.version, payload.kek_id, payload.ciphertext)
                return payloads.render(plaintext, chosen), chosen
        with self._db.write() as conn:
            return _serve_current(conn, self._payloads, record.id, accept, self._clock.now())

    # --- wrapped hand-off -----------------------------------------------------------------------------

    def wrap(self, caller: Caller, secret_id: str, ttl: int | None) -> WrappedToken:
        if ttl is None:
            ttl = self._config.wrap_default_ttl_seconds
        if not 1 <= ttl <= self._config.wrap_max_ttl_seconds:
            raise InvalidInput(f"'ttl' must be 1 to {self._config.wrap_max_ttl_seconds} seconds")
        with self._db.read() as conn:
            # Wrapping hands the payload on: it needs the right to read the payload.
            record = access.secret_for(
                conn, self._policy, caller, secret_id, "secret:decrypt", "Secret wrapping", now=self._clock.now()
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
            if not repo.lock_live_secret(conn, record.id, now):
                raise NotFound("Secret not found.")
            if repo.outstanding_wraps(conn, record.id, now) >= limit:
                raise Conflict(
                    f"The secret has {limit} wrap tokens outstanding, the most allowed: "
                    "wait for one to be used or to expire."
                )
            repo.insert_wrap(
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

    def unwrap(self, token: str | None, accept: str | None) -> tuple[bytes, str]:
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
            found = repo.find_wrap(conn, wrap_id)
            if found is None:
                raise NotFound(_WRAP_NOT_FOUND)
            if not hmac.compare_digest(found.digest, digest) or found.expires_at <= now:
                raise NotFound(_WRAP_NOT_FOUND)
            # Exactly one caller deletes the row; a failure below rolls the token back with the transaction.
            if not repo.spend_wrap(conn, wrap_id, now):
                raise NotFound(_WRAP_NOT_FOUND)
            if self._creator_may_read(conn, found):
                return _serve_current(conn, self._payloads, found.secret_id, accept, now)
        # Committed: the token stays spent, whatever the creator's access becomes later.
        raise NotFound(_WRAP_NOT_FOUND)

    def _creator_may_read(self, conn: Connection, wrap: repo.Wrap) -> bool:
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

    # --- the reaper -----------------------------------------------------------------------------------

    def _discard(self, record: SecretRecord, down: set[str]) -> bool:
        """Destroy an expiring secret's external object first; False (row kept) if its store is down."""
        assert record.store is not None
        if record.store in down:
            return False
        try:
            self._payloads.discard(record)
        except Unavailable:
            # One store's outage must not hold back the reaping of everything else: skip its secrets this pass.
            down.add(record.store)
            return False
        return True

    def reap_once(self, now: datetime | None = None) -> ReapReport:
        """One pass: expired secrets, versions past grace, expired wrap tokens, old tombstones."""
        now = now or self._clock.now()
        report = ReapReport()
        batch = self._config.reap_batch_size
        skip_locked = self._db.dialect != "sqlite"
        cutoff = now - timedelta(seconds=self._config.reap_delay_seconds)
        down = report.unavailable_stores
        while True:
            with self._db.write() as conn:
                claimed = repo.claim_expired(conn, cutoff, batch, skip_locked=skip_locked, skip_stores=down)
                for record in claimed:
                    if record.store is not None and not self._discard(record, down):
                        continue
                    report.expired += repo.remove_secret(conn, record, reason=repo.EXPIRED, now=now)
            if len(claimed) < batch:
                break
        while True:
            with self._db.write() as conn:
                done = repo.reap_versions(conn, now, batch, skip_locked=skip_locked)
            report.versions += done
            if done < batch:
                break
        with self._db.write() as conn:
            report.wraps += repo.reap_wraps(conn, now)
        if self._config.tombstone_retention_seconds >= 0:
            with self._db.write() as conn:
                report.tombstones += repo.reap_tombstones(
                    conn, now - timedelta(seconds=self._config.tombstone_retention_seconds)
                )
        return report


# --- purging a project ---------------------------------------------------------------------------------


def shred_project_keys(db: Database, project_id: str) -> int:
    """Step 1 of a purge, committed on its own: the project's KEKs are destroyed, so every ciphertext of the
    project, in this database and in any backup taken from now on, can no longer be opened."""
    with db.write() as conn:
        return repo.shred_project_keks(conn, project_id)


def purge_project(db: Database, project_id: str, stores: StoreRegistry | None = None) -> dict[str, int]:
    """Destroy the project's KEKs first (own transaction), its objects in external stores, then every row."""
    counts = {"project_keks": shred_project_keys(db, project_id)}
    if stores is not None:
        with db.read() as conn:
            external = repo.externally_stored(conn, project_id)
        for record in external:
            discard(stores.store(record.store or DATABASE), record)
        counts["external_objects"] = len(external)
    with db.write() as conn:
        counts.update(repo.purge_project_rows(conn, project_id))
        # A KEK created meanwhile (a server still serving the project) goes too.
        counts["project_keks"] += repo.shred_project_keks(conn, project_id)
    return counts
