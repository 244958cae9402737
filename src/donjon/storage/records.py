"""Plain values the repositories return. Sealed bytes are kept out of ``repr``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SecretRecord:
    id: str
    project_id: str
    name: str | None
    secret_type: str
    algorithm: str | None
    bit_length: int | None
    mode: str | None
    creator_id: str | None
    expiration: datetime | None
    created_at: datetime
    updated_at: datetime
    content_type: str | None = None
    kek_id: str | None = None
    ciphertext: bytes | None = field(default=None, repr=False)
    # Lifecycle (donjon extensions): a limited secret's read budget; the payload's version (rotation).
    max_reads: int | None = None
    reads_left: int | None = None
    version: int = 1
    # An external secret store's name and its reference to the payload (None: the ciphertext above).
    store: str | None = None
    store_ref: str | None = None

    @property
    def has_payload(self) -> bool:
        return self.content_type is not None


_SECRET_FIELDS = tuple(SecretRecord.__dataclass_fields__)


def secret_record(row: Any) -> SecretRecord:
    """A SecretRecord from a result row; columns the query left out take the record's defaults."""
    m = row._mapping
    return SecretRecord(**{k: m[k] for k in _SECRET_FIELDS if k in m})


@dataclass(frozen=True)
class ConsumerRecord:
    service: str
    resource_type: str
    resource_id: str
    created_at: datetime
    updated_at: datetime
