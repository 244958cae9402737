"""KV v2 (the Vault API's key/value engine) over donjon secrets: one secret per key, one version per write.

A KV key is a secret of the caller's project named by its path; its payload is the version's JSON document
(``text/plain``, so the Barbican API serves it too), sealed like every payload under the project's KEK with
the version in its associated data. Previous versions stay in ``secret_versions`` until ``max_versions``
trims them; ``kv_versions`` adds Vault's soft deletion and destruction. Policy is Barbican's, per operation:
reading data is ``secret:decrypt``, metadata ``secret:get``, writing a new key ``secrets:post``, a new version
or settings ``secret:put``, listing ``secrets:get``, deleting the key ``secret:delete`` (docs/vault-api.md).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from donjon.auth import Caller
from donjon.blocking import WouldBlock, on_event_loop
from donjon.errors import InvalidInput, NotFound
from donjon.policy import Target
from donjon.services import access, payloads
from donjon.services.commands import NewSecret
from donjon.services.payload_service import PayloadService
from donjon.services.project_keys import KekRetired
from donjon.services.sealing import new_secret_record
from donjon.storage import kv as repo
from donjon.storage import secrets as secrets_repo
from donjon.storage import tombstones
from donjon.storage import versions as versions_repo
from donjon.storage import wraps as wraps_repo
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE

DEFAULT_MAX_VERSIONS = 10
CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required for this call"


@dataclass(frozen=True)
class KvVersion:
    version: int
    created_at: datetime
    deletion_time: datetime | None  # soft-deleted at (may be in the future: delete_version_after)
    destroyed: bool

    def deleted(self, now: datetime) -> bool:
        return self.destroyed or (self.deletion_time is not None and self.deletion_time <= now)


@dataclass(frozen=True)
class KvSettings:
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0  # seconds
    custom_metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class KvMetadata:
    path: str
    settings: KvSettings
    created_at: datetime
    updated_at: datetime
    metadata_version: int
    current_version: int
    oldest_version: int
    versions: list[KvVersion]


@dataclass(frozen=True)
class KvRead:
    version: KvVersion
    data: dict[str, Any] | None = None  # None: deleted or destroyed

    def __repr__(self) -> str:
        return f"KvRead(version={self.version.version})"  # never the data


NOT_A_DOCUMENT = "this secret's payload is not a KV document (a JSON object): read it through the Barbican API"


def _document(plain: bytes) -> dict[str, Any]:
    """A version's data. A payload put through the Barbican API (a new version) may be any text: refused
    with a 400 that quotes nothing of it."""
    try:
        value = json.loads(plain)
    except ValueError:
        raise InvalidInput(NOT_A_DOCUMENT) from None
    if not isinstance(value, dict):
        raise InvalidInput(NOT_A_DOCUMENT)
    return value


@dataclass(frozen=True)
class _Attempt:
    """One try at writing a KV version: what was read before the transaction, and the payload sealed for it."""

    caller: Caller
    path: str
    cas: int | None
    entry: repo.KvEntryRow | None
    record: SecretRecord
    current: int
    sealed: SecretRecord = field(repr=False)
    kek_id: str
    ciphertext: bytes = field(repr=False)
    now: datetime


class KvService(PayloadService):  # no store registry: KV versions stay in the database store
    def _new_key_record(self, caller: Caller, path: str, now: datetime) -> SecretRecord:
        """The secret row of a new key (named by its path, no payload yet), the caller's and its project's."""
        return new_secret_record(
            self._payloads, NewSecret(name=path), project_id=caller.project_id, creator_id=caller.user_id, now=now
        )

    # --- lookup ---------------------------------------------------------------------------------------

    def _entry(
        self, conn: Connection, caller: Caller, path: str, rule: str, operation: str, *, with_payload: bool = False
    ) -> tuple[repo.KvEntryRow, SecretRecord]:
        """The entry at ``path`` in the caller's project, if policy lets the caller do ``rule`` on its secret."""
        entry = repo.find_entry(conn, caller.project_id, path)
        if entry is None:
            self._absent(caller, rule, operation)
        record = access.secret_for(
            conn,
            self._policy,
            caller,
            entry.secret_id,
            rule,
            operation,
            now=self._clock.now(),
            with_payload=with_payload,
        )
        return entry, record

    def _secret_at(
        self, conn: Connection, caller: Caller, path: str, rule: str, operation: str, *, with_payload: bool = False
    ) -> SecretRecord:
        """``_entry``'s secret, for an operation that does not need the entry's settings: one query instead of
        two, and the same decisions."""
        now = self._clock.now()
        lookup = repo.secret_at_path(conn, caller.project_id, path, caller.user_id, now, with_payload=with_payload)
        if not lookup.has_entry:
            self._absent(caller, rule, operation)
        return access.decide_secret(lookup.found, self._policy, caller, rule, operation)

    def _absent(self, caller: Caller, rule: str, operation: str) -> NoReturn:
        # Nothing there: 404, unless the caller may not do this on any secret of its project (403).
        self._policy.enforce(rule, caller, Target("secret", caller.project_id), operation=operation)
        raise NotFound("Secret not found.")

    def _versions(self, conn: Connection, record: SecretRecord) -> list[KvVersion]:
        rows = {r.version: r for r in repo.versions(conn, record.id)}
        # A version made through the Barbican API (POST .../versions) has no KV row: it is a live version.
        if record.has_payload and record.version not in rows and rows:
            started = versions_repo.version_started(conn, record.id, record.version) or record.updated_at
            rows[record.version] = repo.KvVersionRow(record.version, started, None, False)
        return [
            KvVersion(r.version, r.created_at, r.deletion_time, r.destroyed)
            for r in sorted(rows.values(), key=lambda r: r.version)
        ]

    # --- data -----------------------------------------------------------------------------------------

    def read(self, caller: Caller, path: str, version: int = 0) -> KvRead:
        """A version (0: the latest) with its data; NotFound if it never was or was trimmed."""
        with self._db.read() as conn:
            record = self._secret_at(
                conn, caller, path, "secret:decrypt", "Secret payload retrieval", with_payload=True
            )
            versions = self._versions(conn, record)
            if not versions:
                raise NotFound("Secret not found.")
            wanted = version or versions[-1].version
            found = next((v for v in versions if v.version == wanted), None)
            if found is None:
                raise NotFound("Secret version not found.")
            if found.deleted(self._clock.now()):
                return KvRead(found)
            kept = None if wanted == record.version else repo.previous_ciphertext(conn, record.id, wanted)
        if wanted == record.version:
            if record.ciphertext is None:
                raise NotFound("Secret version not found.")
            plain = self._payloads.read(record)
        elif kept is None or kept[1] is None:
            raise NotFound("Secret version not found.")
        else:
            plain = self._payloads.read_previous(record, wanted, kept[0], kept[1])
        return KvRead(found, _document(plain))

    def write(self, caller: Caller, path: str, data: dict[str, Any], cas: int | None) -> KvVersion:
        """A new version holding ``data``; ``cas`` as Vault's check-and-set (0: only if the key has none)."""
        document = self._document(data)
        return self._payloads.retry_if_retired(lambda: self._write(caller, path, document, cas))

    async def write_on_loop(self, caller: Caller, path: str, data: dict[str, Any], cas: int | None) -> KvVersion | None:
        """``write`` from the event loop, for a database on this host (SQLite): the version is sealed right here
        and its commit joins the next group commit, answered with its whole batch (``Database.write_grouped_async``).

        None, with nothing written, when it cannot be done in one go: a step would wait (a KEK to make or to
        unwrap), a KEK rotation retired the sealing KEK, or another write of the key came first. The caller then
        runs ``write`` in a worker thread, which handles each of those.
        """
        document = self._document(data)
        try:
            with on_event_loop():
                commit = self._prepare_version(caller, path, document, cas)
        except WouldBlock:
            return None
        try:
            made = await self._db.write_grouped_async(commit)
        except (KekRetired, IntegrityError):
            return None  # rolled back: nothing of it was written
        return None if made is None else _version(made)

    def _document(self, data: dict[str, Any]) -> bytes:
        document = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._check_size(len(document))
        return document

    def _write(self, caller: Caller, path: str, document: bytes, cas: int | None) -> KvVersion:
        while True:
            commit = self._prepare_version(caller, path, document, cas)
            try:
                # Concurrent writes share a transaction and its fsync (group commit); answered once durable.
                made = self._db.write_grouped(commit)
            except IntegrityError:
                continue  # two first writes of one path raced: the loser finds the key and writes after it
            if made is None:
                continue
            return _version(made)

    def _prepare_version(
        self, caller: Caller, path: str, document: bytes, cas: int | None
    ) -> Callable[[Connection], repo.KvVersionRow | None]:
        """The next version of the key at ``path``, sealed, and the commit that records it (None from the commit
        if another write came first: seal again, for the version after it)."""
        now = self._clock.now()
        with self._db.read() as conn:
            found = self._for_write(conn, caller, path, now)
        entry, record, current = found if found is not None else (None, None, 0)
        if record is None:
            # A new key: its secret's row is made (without payload) in the write below.
            record = self._new_key_record(caller, path, now)
        new = current + 1
        # Sealed before the transaction (a KEK unwrap must not hold database locks), bound to the version it
        # becomes.
        sealed = self._payloads.put(replace(record, content_type=payloads.TEXT, version=new), DATABASE, document)
        assert sealed.kek_id is not None and sealed.ciphertext is not None
        attempt = _Attempt(caller, path, cas, entry, record, current, sealed, sealed.kek_id, sealed.ciphertext, now)
        return functools.partial(self._commit_version, attempt)

    def _commit_version(self, attempt: _Attempt, conn: Connection) -> repo.KvVersionRow | None:
        """In the write transaction: the version made, or None if another write came first (the caller seals
        again, for the version after it)."""
        a, record, now = attempt, attempt.record, attempt.now
        entry = a.entry
        self._payloads.hold(conn, a.sealed)
        if entry is None:
            if a.cas not in (None, 0):
                raise InvalidInput(CAS_MISMATCH)
            # A new key: its secret's row is inserted holding version 1 already, the row an insert without
            # payload then ``advance`` would leave (version 1 has no start time of its own), in one statement.
            self._insert_entry(conn, a.caller, a.sealed, a.path, KvSettings(), now)
            made = repo.KvVersionRow(1, now, None, False)  # the default settings: no delete_version_after
            repo.add_version(conn, record.id, made)
            return made
        if not wraps_repo.lock_live_secret(conn, record.id, now):
            raise NotFound("Secret not found.")
        versions = self._versions(conn, record)
        latest = versions[-1].version if versions else 0
        if a.cas is None and entry.cas_required:
            raise InvalidInput(CAS_REQUIRED)
        if a.cas is not None and a.cas != latest:
            raise InvalidInput(CAS_MISMATCH)
        if latest != a.current:
            return None
        new = a.current + 1
        if not repo.advance(
            conn,
            secret_id=record.id,
            project_id=record.project_id,
            new_version=new,
            content_type=payloads.TEXT,
            kek_id=a.kek_id,
            ciphertext=a.ciphertext,
            now=now,
        ):
            return None
        after = timedelta(seconds=entry.delete_version_after) if entry.delete_version_after else None
        made = repo.KvVersionRow(new, now, now + after if after else None, False)
        repo.add_version(conn, record.id, made)
        keep = entry.max_versions or DEFAULT_MAX_VERSIONS
        if new - keep >= 1:
            repo.trim(conn, record.id, new - keep + 1)
        return made

    def _for_write(
        self, conn: Connection, caller: Caller, path: str, now: datetime
    ) -> tuple[repo.KvEntryRow, SecretRecord, int] | None:
        """The key's entry, secret and latest version, if it exists and the caller may write it."""
        entry = repo.find_entry(conn, caller.project_id, path)
        if entry is None:
            self._policy.enforce("secrets:post", caller, operation="Secret creation")
            return None
        record = access.secret_for(conn, self._policy, caller, entry.secret_id, "secret:put", "Secret update", now=now)
        versions = self._versions(conn, record)
        return entry, record, versions[-1].version if versions else 0

    def _insert_entry(
        self, conn: Connection, caller: Caller, record: SecretRecord, path: str, settings: KvSettings, now: datetime
    ) -> repo.KvEntryRow:
        """A new key: its secret (no payload yet) and its entry, in the caller's transaction."""
        self._quotas.check(
            conn, caller.project_id, "secrets", lambda c, p: secrets_repo.count_live_secrets(c, p, now=now)
        )
        secrets_repo.insert_secret(conn, record)
        entry = repo.KvEntryRow(
            record.id,
            caller.project_id,
            path,
            settings.max_versions,
            settings.cas_required,
            settings.delete_version_after,
            settings.custom_metadata,
            1 if settings != KvSettings() else 0,
            now,
            now,
        )
        repo.insert_entry(conn, entry)
        return entry

    def latest_for_patch(self, caller: Caller, path: str) -> tuple[int, dict[str, Any]]:
        """The latest version's number and data, for a merge patch (NotFound if none or deleted)."""
        found = self.read(caller, path)
        if found.data is None:
            raise NotFound("Secret not found.")
        return found.version.version, found.data

    # --- versions' state ------------------------------------------------------------------------------

    def delete_latest(self, caller: Caller, path: str) -> None:
        with self._db.write() as conn:
            record = self._secret_at(conn, caller, path, "secret:put", "Secret update")
            versions = self._versions(conn, record)
            if versions and not versions[-1].deleted(self._clock.now()):
                repo.set_deletion(conn, record.id, [versions[-1].version], self._clock.now())

    def set_deleted(self, caller: Caller, path: str, numbers: list[int], deleted: bool) -> None:
        """Soft-delete or undelete versions; a missing key or version is no error (Vault answers 204)."""
        with self._db.write() as conn:
            try:
                record = self._secret_at(conn, caller, path, "secret:put", "Secret update")
            except NotFound:
                return
            repo.set_deletion(conn, record.id, numbers, self._clock.now() if deleted else None)

    def destroy(self, caller: Caller, path: str, numbers: list[int]) -> None:
        with self._db.write() as conn:
            try:
                record = self._secret_at(conn, caller, path, "secret:delete", "Secret deletion")
            except NotFound:
                return
            repo.destroy(conn, record.id, numbers, record.version)

    # --- metadata -------------------------------------------------------------------------------------

    def metadata(self, caller: Caller, path: str) -> KvMetadata:
        with self._db.read() as conn:
            entry, record = self._entry(conn, caller, path, "secret:get", "Secret retrieval")
            versions = self._versions(conn, record)
        settings = KvSettings(entry.max_versions, entry.cas_required, entry.delete_version_after, entry.custom_metadata)
        current = versions[-1].version if versions else 0
        oldest = versions[0].version if versions and versions[0].version > 1 else 0
        return KvMetadata(
            path, settings, entry.created_at, entry.updated_at, entry.metadata_version, current, oldest, versions
        )

    def write_metadata(self, caller: Caller, path: str, changes: dict[str, Any]) -> None:
        """Change a key's settings (``changes`` holds KvSettings field names), creating the key if needed."""
        try:
            self._write_metadata(caller, path, changes)
        except IntegrityError:
            # Two first writes of one path raced: the loser's entry collided; once more, it updates the key.
            self._write_metadata(caller, path, changes)

    def _write_metadata(self, caller: Caller, path: str, changes: dict[str, Any]) -> None:
        now = self._clock.now()
        with self._db.write() as conn:
            entry = repo.find_entry(conn, caller.project_id, path)
            if entry is None:
                self._policy.enforce("secrets:post", caller, operation="Secret creation")
                record = self._new_key_record(caller, path, now)
                self._insert_entry(conn, caller, record, path, replace(KvSettings(), **changes), now)
                return
            access.secret_for(conn, self._policy, caller, entry.secret_id, "secret:put", "Secret update", now=now)
            repo.update_entry(
                conn, replace(entry, **changes, metadata_version=entry.metadata_version + 1, updated_at=now)
            )

    def delete_key(self, caller: Caller, path: str) -> None:
        """Every version and the key itself: the secret is deleted as by the Barbican API (a tombstone stays)."""
        with self._db.write() as conn:
            try:
                record = self._secret_at(conn, caller, path, "secret:delete", "Secret deletion")
            except NotFound:
                return
            tombstones.remove_secret(conn, record, reason=tombstones.DELETED, now=self._clock.now())

    def list_keys(self, caller: Caller, prefix: str) -> list[str]:
        """The names right under ``prefix`` (``"a/"`` for a folder), sorted; empty if there are none."""
        self._policy.enforce("secrets:get", caller, operation="Secret(s) retrieval")
        with self._db.read() as conn:
            paths = repo.paths_under(conn, caller.project_id, prefix)
        names = set()
        for path in paths:
            rest = path[len(prefix) :]
            head, slash, _ = rest.partition("/")
            names.add(head + slash)
        return sorted(n for n in names if n)


def _version(row: repo.KvVersionRow) -> KvVersion:
    return KvVersion(row.version, row.created_at, row.deletion_time, row.destroyed)
