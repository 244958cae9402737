"""Versions of a secret's payload (a donjon extension): rotating stores a new payload as the current version,
the previous one stays readable for ``lifecycle.version_grace_seconds``; ``GET .../lifecycle`` describes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from donjon.auth import Caller
from donjon.errors import Conflict, NotFound
from donjon.policy import Policy
from donjon.services import access
from donjon.services.commands import NewPayload, PayloadFormat, no_intent
from donjon.services.lifecycle import LifecycleDeps, LifecycleService
from donjon.services.limited_reads import serve_current
from donjon.storage import versions as versions_repo
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE


@dataclass(frozen=True)
class LifecycleView:
    max_reads: int | None
    reads_left: int | None
    version: int
    version_created: datetime
    previous: list[versions_repo.VersionInfo]


class SecretVersions(LifecycleService):
    """A new payload becomes current; the previous one stays readable for a grace period."""

    def __init__(self, deps: LifecycleDeps, policy: Policy) -> None:
        super().__init__(deps)
        self._policy = policy

    def describe(self, caller: Caller, secret_id: str) -> LifecycleView:
        with self._db.read() as conn:
            record = access.secret_for(
                conn, self._policy, caller, secret_id, "secret:get", "Secret retrieval", now=self._clock.now()
            )
            previous = versions_repo.previous_versions(conn, record.id, self._clock.now())
            started = versions_repo.version_started(conn, record.id, record.version) or record.created_at
        return LifecycleView(record.max_reads, record.reads_left, record.version, started, previous)

    def rotate(self, caller: Caller, secret_id: str, new: NewPayload) -> int:
        """Store a new payload as the current version; the previous one stays readable for the grace period."""
        record = access.exportable_secret(
            self._db, self._policy, caller, secret_id, "secret:put", "Secret update", now=self._clock.now()
        )
        if not record.has_payload:
            raise Conflict("Secret has no payload to rotate: store the first one with PUT.")
        if record.max_reads is not None:
            raise Conflict("A secret with max_reads cannot have versions.")
        if record.store_ref is not None:
            raise Conflict("Versions are kept for secrets in the database store only.")
        return self._payloads.retry_if_retired(lambda: self._rotate(record, new.content_type, new.data))

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
                found = versions_repo.current_payload(conn, record.id)
                if found is None or found[1] is None:
                    raise NotFound("Secret not found.")
                current = found[1]
                if current.version + 1 != version:
                    version = current.version + 1
                    continue
                started = versions_repo.version_started(conn, record.id, current.version) or found[0].created_at
                grace = now + timedelta(seconds=self._config.version_grace_seconds)
                if not versions_repo.rotate(
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

    def payload_version(
        self,
        caller: Caller,
        secret_id: str,
        version: int,
        fmt: PayloadFormat,
        *,
        before_effect: Callable[[], None] = no_intent,
    ) -> tuple[bytes, str]:
        """A version's payload; the current one of a limited secret spends a read (``before_effect`` first)."""
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
            access.payload_exportable(record, "Secret payload retrieval")
            if version != record.version:
                payload = versions_repo.previous_payload(conn, record.id, version, self._clock.now())
                if payload is None:
                    raise NotFound("Secret version not found.")
                chosen = fmt.choose(payload.content_type)
                plaintext = self._payloads.read_previous(record, payload.version, payload.kek_id, payload.ciphertext)
                return fmt.render(plaintext, chosen), chosen
        if record.max_reads is not None:
            before_effect()
        with self._db.write() as conn:
            return serve_current(conn, self._payloads, record.id, fmt, self._clock.now())
