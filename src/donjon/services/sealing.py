"""Building the row of a new secret: its payload sealed under the project's KEK, bound to its identity."""

from __future__ import annotations

import uuid
from datetime import datetime

from donjon.crypto import seal_payload
from donjon.services.project_keys import ProjectKeys
from donjon.services.stores import StoreRegistry
from donjon.services.validation import NewSecret
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE, PayloadInfo


def new_secret_record(
    keys: ProjectKeys,
    new: NewSecret,
    *,
    project_id: str,
    creator_id: str | None,
    now: datetime,
    stores: StoreRegistry | None = None,
    store: str = DATABASE,
) -> SecretRecord:
    """The row of a new secret. With an external ``store``, the payload is put there first: a caller whose
    insert then fails must ``stores.discard`` the record, or the object would outlive its secret."""
    secret_id = str(uuid.uuid4())
    kek_id = ciphertext = store_name = store_ref = None
    # Limited secrets stay in the database store: their last read deletes the payload in the same transaction.
    if new.payload is not None and stores is not None and store != DATABASE and new.max_reads is None:
        info = PayloadInfo(secret_id, project_id, new.secret_type, new.algorithm, new.bit_length)
        store_name, store_ref = store, stores.put(store, info, new.payload)
    elif new.payload is not None:
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
        store=store_name,
        store_ref=store_ref,
    )
