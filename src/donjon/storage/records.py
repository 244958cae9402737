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


# A row's column names -> the record fields among them, in order. Bounded: one entry per statement's columns.
_FIELDS_OF: dict[tuple[str, ...], tuple[str, ...]] = {}


def secret_record(row: Any) -> SecretRecord:
    """A SecretRecord from a result row; columns the query left out take the record's defaults."""
    columns: tuple[str, ...] = row._fields
    present = _FIELDS_OF.get(columns)
    if present is None:
        present = tuple(k for k in _SECRET_FIELDS if k in columns)
        if len(_FIELDS_OF) < 64:
            _FIELDS_OF[columns] = present
    m = row._mapping
    return SecretRecord(**{k: m[k] for k in present})


@dataclass(frozen=True)
class ConsumerRecord:
    service: str
    resource_type: str
    resource_id: str
    created_at: datetime
    updated_at: datetime
