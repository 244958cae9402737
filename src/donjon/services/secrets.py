"""Secrets: create, read metadata and payload, add a payload later, delete, list; user metadata; consumers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.crypto import open_payload, seal_payload
from donjon.crypto.keys import ProjectKeys
from donjon.errors import Conflict, InvalidInput, NotFound, TooLarge, UnsupportedMediaType
from donjon.services import payloads
from donjon.services.validation import NewSecret, is_canonical_uuid4
from donjon.storage import secrets as repo
from donjon.storage.database import Database
from donjon.storage.records import ConsumerRecord, SecretRecord
from donjon.timeutil import utcnow


@dataclass(frozen=True)
class SecretView:
    secret: SecretRecord
    consumers: list[ConsumerRecord]


class SecretService:
    def __init__(self, db: Database, keys: ProjectKeys, *, max_secret_bytes: int) -> None:
        self._db = db
        self._keys = keys
        self._max_secret_bytes = max_secret_bytes

    # --- lookup ---------------------------------------------------------------------------------------

    def _find(self, conn: Connection, caller: Caller, secret_id: str, *, with_payload: bool = False) -> SecretRecord:
        # Another project's secret is "not found", exactly like a missing one: no existence oracle.
        if not is_canonical_uuid4(secret_id):
            raise NotFound("Not Found. Provided secret id is invalid.")
        record = repo.get_secret(conn, caller.project_id, secret_id, utcnow(), with_payload=with_payload)
        if record is None:
            raise NotFound("Secret not found.")
        return record

    # --- secrets --------------------------------------------------------------------------------------

    def create(self, caller: Caller, new: NewSecret) -> SecretRecord:
        secret_id = str(uuid.uuid4())
        now = utcnow()
        kek_id = ciphertext = None
        if new.payload is not None:
            kek = self._keys.active(caller.project_id)
            kek_id = kek.id
            ciphertext = seal_payload(kek.key, new.payload, secret_id=secret_id, project_id=caller.project_id)
        record = SecretRecord(
            id=secret_id,
            project_id=caller.project_id,
            name=new.name,
            secret_type=new.secret_type,
            algorithm=new.algorithm,
            bit_length=new.bit_length,
            mode=new.mode,
            creator_id=caller.user_id,
            expiration=new.expiration,
            created_at=now,
            updated_at=now,
            content_type=new.content_type if new.payload is not None else None,
            kek_id=kek_id,
            ciphertext=ciphertext,
        )
        with self._db.write() as conn:
            repo.insert_secret(conn, record)
        return record

    def get(self, caller: Caller, secret_id: str, *, with_consumers: bool) -> SecretView:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id)
            consumers = repo.consumers_of(conn, [record.id])[record.id] if with_consumers else []
        return SecretView(record, consumers)

    def get_payload(self, caller: Caller, secret_id: str, accept: str | None) -> tuple[bytes, str]:
        """The payload rendered for ``accept``, and the content type to answer with."""
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id, with_payload=True)
        if record.ciphertext is None or record.content_type is None or record.kek_id is None:
            raise NotFound("Not Found. Sorry but your secret has no payload.")
        chosen = payloads.negotiate(accept, record.content_type)
        kek = self._keys.get(record.project_id, record.kek_id)
        plaintext = open_payload(kek, record.ciphertext, secret_id=record.id, project_id=record.project_id)
        return payloads.render(plaintext, chosen), chosen

    def put_payload(
        self, caller: Caller, secret_id: str, body: bytes, content_type: str | None, content_encoding: str | None
    ) -> None:
        """Second step of a two-step create: a raw body becomes the payload of a secret that has none."""
        main = (content_type or "").split(";", 1)[0].strip().lower()
        if main not in (payloads.TEXT, payloads.OCTET_STREAM):
            raise UnsupportedMediaType(
                "Unexpected content type. Expected content types are: ['text/plain', 'application/octet-stream']"
            )
        if not body:
            raise InvalidInput("No data supplied to process.")
        if len(body) > self._max_secret_bytes:
            raise TooLarge("Provided information too large to process")
        if main == payloads.OCTET_STREAM:
            encoding = (content_encoding or "").strip().lower()
            if encoding == "base64":
                body = payloads.decode_base64(body)
            elif encoding:
                raise InvalidInput("Content-Encoding of base64 is the only one supported")
        else:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput("A text/plain payload must be UTF-8") from None
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id)
        if record.has_payload:
            raise Conflict("Secret already has data, cannot modify it.")
        kek = self._keys.active(caller.project_id)
        sealed = seal_payload(kek.key, body, secret_id=record.id, project_id=record.project_id)
        with self._db.write() as conn:
            if not repo.set_payload(conn, record.id, content_type=main, kek_id=kek.id, ciphertext=sealed, now=utcnow()):
                raise Conflict("Secret already has data, cannot modify it.")

    def delete(self, caller: Caller, secret_id: str, *, refuse_with_consumers: bool) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            if refuse_with_consumers and repo.count_consumers(conn, record.id):
                raise InvalidInput("Secret deletion issue seen - Secret cannot be deleted as it has consumers.")
            repo.delete_secret(conn, caller.project_id, record.id)

    def list_secrets(self, query: repo.SecretQuery, *, with_consumers: bool) -> tuple[list[SecretView], int]:
        with self._db.read() as conn:
            records, total = repo.list_secrets(conn, query)
            consumers = repo.consumers_of(conn, [r.id for r in records]) if with_consumers else {}
        return [SecretView(r, consumers.get(r.id, [])) for r in records], total

    # --- user metadata --------------------------------------------------------------------------------

    def get_metadata(self, caller: Caller, secret_id: str) -> dict[str, str]:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id)
            return repo.get_metadata(conn, record.id)

    def replace_metadata(self, caller: Caller, secret_id: str, items: list[tuple[str, str]]) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            repo.replace_metadata(conn, record.id, items)
            repo.touch_secret(conn, record.id, utcnow())

    def get_metadatum(self, caller: Caller, secret_id: str, key: str) -> str:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id)
            value = repo.get_metadatum(conn, record.id, key.lower())
        if value is None:
            raise NotFound("Secret metadata not found.")
        return value

    def add_metadatum(self, caller: Caller, secret_id: str, key: str, value: str) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            if not repo.insert_metadatum(conn, record.id, key, value):
                raise Conflict(f"Secret metadata with key '{key}' already exists.")

    def update_metadatum(self, caller: Caller, secret_id: str, key: str, value: str) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            if not repo.update_metadatum(conn, record.id, key, value):
                raise NotFound("Secret metadata not found.")

    def delete_metadatum(self, caller: Caller, secret_id: str, key: str) -> None:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            repo.delete_metadatum(conn, record.id, key.lower())

    # --- consumers ------------------------------------------------------------------------------------

    def list_consumers(
        self, caller: Caller, secret_id: str, offset: int, limit: int
    ) -> tuple[list[ConsumerRecord], int]:
        with self._db.read() as conn:
            record = self._find(conn, caller, secret_id)
            return repo.list_consumers(conn, record.id, offset, limit)

    def add_consumer(
        self, caller: Caller, secret_id: str, service: str, resource_type: str, resource_id: str
    ) -> SecretView:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            repo.add_consumer(
                conn,
                consumer_id=str(uuid.uuid4()),
                secret_id=record.id,
                project_id=caller.project_id,
                service=service,
                resource_type=resource_type,
                resource_id=resource_id,
                now=utcnow(),
            )
            return SecretView(record, repo.consumers_of(conn, [record.id])[record.id])

    def remove_consumer(
        self, caller: Caller, secret_id: str, service: str, resource_type: str, resource_id: str
    ) -> SecretView:
        with self._db.write() as conn:
            record = self._find(conn, caller, secret_id)
            if not repo.remove_consumer(
                conn, secret_id=record.id, service=service, resource_type=resource_type, resource_id=resource_id
            ):
                raise NotFound("Consumer not found.")
            return SecretView(record, repo.consumers_of(conn, [record.id])[record.id])
