"""The schema. Alembic migrations under ``migrations/versions`` create exactly these tables.

Timestamps are naive UTC with microseconds on every backend (MariaDB needs DATETIME(6) for that).
Deletes are hard: when a secret goes, its ciphertext row goes with it.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# Ciphertexts are at most max_secret_bytes + 29; MEDIUMBLOB leaves room for larger configured limits.
Blob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")

project_keks = Table(
    "project_keks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("root_key_id", String(255), nullable=False),
    Column("wrapped_key", LargeBinary(1024), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "project_id"),
)

# One row per project: which KEK new secrets use. The primary key makes concurrent first use race-free:
# the loser of the insert reads the winner's KEK.
project_active_kek = Table(
    "project_active_kek",
    metadata,
    Column("project_id", String(255), primary_key=True),
    Column("kek_id", String(36), ForeignKey("project_keks.id"), nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("name", String(255)),
    Column("secret_type", String(32), nullable=False),
    Column("algorithm", String(255)),
    Column("bit_length", Integer),
    Column("mode", String(255)),
    Column("creator_id", String(255)),
    Column("expiration", Timestamp),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # The payload, when one is stored: normalized content type, the KEK that sealed it, the sealed bytes.
    Column("content_type", String(64)),
    Column("kek_id", String(36), ForeignKey("project_keks.id")),
    Column("ciphertext", Blob),
    Index(None, "project_id", "created_at", "id"),
)

secret_metadata = Table(
    "secret_metadata",
    metadata,
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)

secret_consumers = Table(
    "secret_consumers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("service", String(255), nullable=False),
    Column("resource_type", String(255), nullable=False),
    Column("resource_id", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("secret_id", "service", "resource_type", "resource_id"),
    Index(None, "secret_id", "created_at"),
)
