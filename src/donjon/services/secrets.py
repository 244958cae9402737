"""Secrets: create, read metadata and payload, add a payload later, delete, list; user metadata; consumers."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from donjon.auth import Caller
from donjon.blocking import WouldBlock, may_block, on_event_loop
from donjon.errors import Conflict, InvalidInput, NotFound, UnsupportedMediaType
from donjon.policy import Target
from donjon.services import access, limited_reads, payloads
from donjon.services.commands import Metadatum, NewConsumer, NewSecret, PayloadFormat, PayloadUpload, no_intent
from donjon.services.payload_service import PayloadService
from donjon.services.payload_store import NO_PAYLOAD
from donjon.services.project_keys import KekRetired
from donjon.services.sealing import new_secret_record
from donjon.storage import secrets as repo
from donjon.storage import tombstones

# Re-exported (``as``): the API builds list queries and reads consumers through this service's interface.
from donjon.storage.records import ConsumerRecord as ConsumerRecord
from donjon.storage.records import SecretRecord
from donjon.storage.secrets import SecretQuery as SecretQuery
from donjon.storage.secrets import TimeBound as TimeBound


@dataclass(frozen=True)
class SecretView:
    secret: SecretRecord
    consumers: list[ConsumerRecord]


class SecretService(PayloadService):
    # --- lookup ---------------------------------------------------------------------------------------

    def _find(
        self, conn: Connection, caller: Caller, secret_id: str, rule: str, operation: str, *, with_payload: bool = False
    ) -> SecretRecord:
        return access.secret_for(
            conn, self._policy, caller, secret_id, rule, operation, now=self._clock.now(), with_payload=with_payload
        )

    # --- secrets --------------------------------------------------------------------------------------

    def create(self, caller: Caller, new: NewSecret) -> SecretRecord:
        self._policy.enforce("secrets:post", caller, operation="Secret creation")
        return self._payloads.retry_if_retired(lambda: self._create(caller, new))

    async def create_on_loop(self, caller: Caller, new: NewSecret) -> SecretRecord | None:
        """``create`` from the event loop: the row is built and its payload sealed right here, and the insert
        joins the next group commit (run by its committer thread) without a worker thread of its own.

        None when it cannot be done so, with nothing created: a step would wait (a KEK to unwrap or to make, an
        external store, a read from a database over the network: ``donjon.blocking``), or a KEK rotation
        retired the sealing KEK meanwhile. The caller then runs ``create`` in a worker thread, which retries
        after a rotation.
        """
        try:
            with on_event_loop():
                self._policy.enforce("secrets:post", caller, operation="Secret creation")
                record, insert = self._new_row(caller, new)
        except WouldBlock:
            return None
        try:
            await self._db.write_grouped_async(insert)
        except (KekRetired, IntegrityError):
            # Rolled back, nothing of it kept: ``create`` seals under the active KEK, or raises a real error.
            return None
        except BaseException:
            self._payloads.discard(record)  # the database store's payload goes with its row: nothing waits here
            raise
        return record

    def _create(self, caller: Caller, new: NewSecret) -> SecretRecord:
        record, insert = self._new_row(caller, new)
        try:
            # Concurrent creates share a transaction and its fsync (group commit); answered once durable.
            self._db.write_grouped(insert)
        except BaseException:
            self._payloads.discard(record)  # an external object whose secret was never created must not stay
            raise
        return record

    def _new_row(self, caller: Caller, new: NewSecret) -> tuple[SecretRecord, Callable[[Connection], None]]:
        """A new secret's row with its payload in its store, and the insert that records it (in a write
        transaction, after the quota check). A caller whose insert fails must ``discard`` the record."""
        now = self._clock.now()
        record = new_secret_record(
            self._payloads,
            new,
            project_id=caller.project_id,
            creator_id=caller.user_id,
            now=now,
            store=self._store_for_new(caller.project_id),
        )

        def insert(conn: Connection) -> None:
            live = functools.partial(repo.count_live_secrets, now=now)  # expired secrets do not count
            self._quotas.check(conn, caller.project_id, "secrets", live)
            self._payloads.hold(conn, record)
            repo.insert_secret(conn, record)

        return record, insert

    def get(self, caller: Caller, secret_id: str, *, with_consumers: bool) -> SecretView:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id, "secret:get", "Secret retrieval")
            consumers = repo.consumers_of(conn, [record.id])[record.id] if with_consumers else []
        return SecretView(record, consumers)

    def get_payload(
        self, caller: Caller, secret_id: str, fmt: PayloadFormat, *, before_effect: Callable[[], None] = no_intent
    ) -> tuple[bytes, str]:
        """The payload rendered as ``fmt`` chooses, and the content type to answer with.

        A limited secret's read spends one of its reads: ``before_effect`` is called first (the API records
        its intent there, and may refuse by raising), and nothing is spent if it raises.
        """
        with self._db.read() as conn:
            record = self._find(
                conn, caller, secret_id, "secret:decrypt", "Secret payload retrieval", with_payload=True
            )
        access.payload_exportable(record, "Secret payload retrieval")
        if record.content_type is None:
            raise NotFound(NO_PAYLOAD)
        chosen = fmt.choose(record.content_type)
        if record.max_reads is not None:
            # A limited secret: the read is spent and the payload opened in one transaction (donjon extension).
            may_block("a limited secret's read")  # before its audit record and its write
            before_effect()
            return limited_reads.read_limited(self._db, self._payloads, record.id, fmt, self._clock.now())
        return fmt.render(self._payloads.read(record), chosen), chosen

    def put_payload(self, caller: Caller, secret_id: str, upload: PayloadUpload) -> None:
        """Second step of a two-step create: a raw body becomes the payload of a secret that has none.

        Checks come in Barbican's order: the secret and the caller's right to it, the content type (415), an
        empty or oversize body, then 409 if a payload is already there, and only then the body itself, so a
        client retrying a PUT that worked learns "already has data" whatever it sends.
        """
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id, "secret:put", "Secret update")
        main, body = upload.media_type, upload.data
        if main not in (payloads.TEXT, payloads.OCTET_STREAM):
            raise UnsupportedMediaType(
                "Unexpected content type. Expected content types are: ['text/plain', 'application/octet-stream']"
            )
        if not body:
            raise InvalidInput("No data supplied to process.")
        self._check_size(len(body))
        if record.has_payload:
            raise Conflict("Secret already has data, cannot modify it.")
        if main == payloads.OCTET_STREAM:
            encoding = upload.encoding
            if encoding == "base64":
                body = payloads.decode_base64(body)
            elif encoding:
                raise InvalidInput("Content-Encoding of base64 is the only one supported")
        else:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput("A text/plain payload must be UTF-8") from None
        store = self._store_for_new(record.project_id)
        self._payloads.retry_if_retired(lambda: self._set_payload(replace(record, content_type=main), store, body))

    def _set_payload(self, record: SecretRecord, store: str, body: bytes) -> None:
        stored = self._payloads.put(record, store, body)
        assert stored.content_type is not None
        try:
            with self._db.write() as conn:
                self._payloads.hold(conn, stored)
                if not repo.set_payload(
                    conn,
                    stored.id,
                    content_type=stored.content_type,
                    now=self._clock.now(),
                    kek_id=stored.kek_id,
                    ciphertext=stored.ciphertext,
                    store=stored.store,
                    store_ref=stored.store_ref,
                ):
                    raise Conflict("Secret already has data, cannot modify it.")
        except BaseException:
            self._payloads.discard(stored)  # an external object no row points at must not stay
            raise

    def delete(self, caller: Caller, secret_id: str, *, refuse_with_consumers: bool) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret:delete", "Secret deletion")
            if refuse_with_consumers and repo.count_consumers(conn, record.id):
                raise InvalidInput("Secret deletion issue seen - Secret cannot be deleted as it has consumers.")
            # An external object goes first: if its store is down, nothing is deleted (503) and a retry works.
            self._payloads.discard(record)
            # The row goes with its ciphertext (hard delete); a tombstone records when and why.
            tombstones.remove_secret(conn, record, reason=tombstones.DELETED, now=self._clock.now())

    def list_secrets(
        self, caller: Caller, query: repo.SecretQuery, *, with_consumers: bool
    ) -> tuple[list[SecretView], int]:
        self._policy.enforce("secrets:get", caller, operation="Secret(s) retrieval")
        if not self._policy.allowed("secret_project_admin", caller, Target("secret", caller.project_id)):
            # A private secret (project-access false) is listed only to its creator and the project's admins.
            query.private_visible_to = caller.user_id or ""
        with self._db.read() as conn:
            records, total = repo.list_secrets(conn, query)
            consumers = repo.consumers_of(conn, [r.id for r in records]) if with_consumers else {}
        return [SecretView(r, consumers.get(r.id, [])) for r in records], total

    # --- user metadata --------------------------------------------------------------------------------

    def get_metadata(self, caller: Caller, secret_id: str) -> dict[str, str]:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id, "secret_meta:get", "Secret metadata retrieval")
            return repo.get_metadata(conn, record.id)

    def replace_metadata(self, caller: Caller, secret_id: str, items: list[Metadatum]) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret_meta:put", "Secret metadata update")
            repo.replace_metadata(conn, record.id, [(m.key, m.value) for m in items])
            repo.touch_secret(conn, record.id, self._clock.now())

    def get_metadatum(self, caller: Caller, secret_id: str, key: str) -> str:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id, "secret_meta:get", "Secret metadatum retrieval")
            value = repo.get_metadatum(conn, record.id, key.lower())
        if value is None:
            raise NotFound("Secret metadata not found.")
        return value

    def add_metadatum(self, caller: Caller, secret_id: str, item: Metadatum) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret_meta:post", "Secret metadatum creation")
            if not repo.insert_metadatum(conn, record.id, item.key, item.value):
                raise Conflict(f"Secret metadata with key '{item.key}' already exists.")

    def update_metadatum(self, caller: Caller, secret_id: str, item: Metadatum) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret_meta:put", "Secret metadatum update")
            if not repo.update_metadatum(conn, record.id, item.key, item.value):
                raise NotFound("Secret metadata not found.")

    def delete_metadatum(self, caller: Caller, secret_id: str, key: str) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret_meta:delete", "Secret metadatum removal")
            repo.delete_metadatum(conn, record.id, key.lower())

    # --- consumers ------------------------------------------------------------------------------------

    def list_consumers(
        self, caller: Caller, secret_id: str, offset: int, limit: int
    ) -> tuple[list[ConsumerRecord], int]:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id, "secret_consumers:get", "Secret consumers retrieval")
            return repo.list_consumers(conn, record.id, offset, limit)

    def add_consumer(self, caller: Caller, secret_id: str, consumer: NewConsumer) -> SecretView:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret_consumers:post", "Secret consumer creation")
            self._quotas.check(conn, caller.project_id, "consumers", repo.count_project_consumers)
            repo.add_consumer(
                conn,
                consumer_id=str(uuid.uuid4()),
                secret_id=record.id,
                project_id=caller.project_id,
                service=consumer.service,
                resource_type=consumer.resource_type,
                resource_id=consumer.resource_id,
                now=self._clock.now(),
            )
            return SecretView(record, repo.consumers_of(conn, [record.id])[record.id])

    def remove_consumer(self, caller: Caller, secret_id: str, consumer: NewConsumer) -> SecretView:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id, "secret_consumers:delete", "Secret consumer deletion")
            which = {"secret_id": record.id, **asdict(consumer)}
            registered_by = repo.consumer_project(conn, **which)
            if registered_by is None:
                raise NotFound("Consumer not found.")
            access.may_remove_consumer(caller, record.project_id, registered_by)
            if not repo.remove_consumer(conn, **which):
                raise NotFound("Consumer not found.")
            return SecretView(record, repo.consumers_of(conn, [record.id])[record.id])
