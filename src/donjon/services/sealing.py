"""Building the row of a new secret: its payload sealed under the project's KEK, bound to its identity."""

from __future__ import annotations

import uuid
from datetime import datetime

from donjon.crypto import seal_payload
from donjon.crypto.keys import ProjectKeys
from donjon.services.validation import NewSecret
from donjon.storage.records import SecretRecord


def new_secret_record(
    keys: ProjectKeys, new: NewSecret, *, project_id: str, creator_id: str | None, now: datetime
) -> SecretRecord:
    secret_id = str(uuid.uuid4())
    kek_id = ciphertext = None
    if new.payload is not None:
        kek = keys.active(project_id)
        kek_id = kek.id
        ciphertext = seal_payload(kek.key, new.payload, secret_id=secret_id, project_id=project_id)
    return SecretRecord(
        id=secret_id,
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
        kek_id=kek_id,
        ciphertext=ciphertext,
        max_reads=new.max_reads,
        reads_left=new.max_reads,
    )
