"""Building the row of a new secret, its payload put in the store it goes to (donjon.services.payload_store)."""

from __future__ import annotations

from datetime import datetime

from donjon.ids import uuid4_text
from donjon.services.commands import NewSecret
from donjon.services.payload_store import PayloadStore
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE


def new_secret_record(
    payloads: PayloadStore,
    new: NewSecret,
    *,
    project_id: str,
    creator_id: str | None,
    now: datetime,
    store: str = DATABASE,
) -> SecretRecord:
    """The row of a new secret, its payload (if any) already in ``store``: a caller whose insert then fails
    must ``payloads.discard`` the record, or an external object would outlive its secret."""
    record = SecretRecord(
        id=uuid4_text(),
        project_id=project_id,
        name=new.name,
        secret_type=new.secret_type,
        algorithm=new.algorithm,
        bit_length=new.bit_length,
        mode=new.mode,
        creator_id=creator_id,
        expiration=new.expiration,
        created_at=now,
        updated_at=now,
        content_type=new.content_type if new.payload is not None else None,
        max_reads=new.max_reads,
        reads_left=new.max_reads,
    )
    return record if new.payload is None else payloads.put(record, store, new.payload)
