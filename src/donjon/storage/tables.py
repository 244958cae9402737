"""The schema. Alembic migrations under ``migrations/versions`` create exactly these tables.

Timestamps are naive UTC with microseconds on every backend (MariaDB needs DATETIME(6) for that).
Deletes are hard: when a secret goes, its ciphertext row goes with it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
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


def _timestamps() -> tuple[Column[datetime], Column[datetime]]:
    return Column("created_at", Timestamp, nullable=False), Column("updated_at", Timestamp, nullable=False)


def _acl_tables(entity: str) -> tuple[Table, Table]:
    """An entity's ACL (only the "read" operation exists, so one row per entity) and the users it lists."""
    key = f"{entity}_id"
    acls = Table(
        f"{entity}_acls",
        metadata,
        Column(key, String(36), ForeignKey(f"{entity}s.id", ondelete="CASCADE"), primary_key=True),
        Column("project_access", Boolean, nullable=False),
        *_timestamps(),
    )
    users = Table(
        f"{entity}_acl_users",
        metadata,
        Column(key, String(36), ForeignKey(f"{entity}_acls.{key}", ondelete="CASCADE"), primary_key=True),
        Column("user_id", String(255), primary_key=True),
        Index(None, "user_id"),
    )
    return acls, users


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
    *_timestamps(),
    # The payload, when one is stored: normalized content type, the KEK that sealed it, the sealed bytes.
    Column("content_type", String(64)),
    Column("kek_id", String(36), ForeignKey("project_keks.id")),
    Column("ciphertext", Blob),
    # Lifecycle (donjon extensions): a limited secret's read budget, and the payload's version (rotation).
    Column("max_reads", Integer),
    Column("reads_left", Integer),
    Column("version", Integer, nullable=False, server_default="1"),
    # When that version became current (its rotation); NULL for version 1, which started with the secret.
    Column("version_started_at", Timestamp),
    # A payload kept by an external secret store (kmip, vault): the store's configured name and its reference
    # to the object. NULL store: the payload is the ciphertext above (the built-in "database" store).
    Column("store", String(64)),
    Column("store_ref", String(255)),
    # At most one store holds the payload, and a store name comes with its reference (migration 0010).
    CheckConstraint("ciphertext IS NULL OR store_ref IS NULL", name="ck_secrets_payload_in_one_store"),
    CheckConstraint(
        "(store IS NULL AND store_ref IS NULL) OR (store IS NOT NULL AND store_ref IS NOT NULL)",
        name="ck_secrets_store_with_ref",
    ),
    Index(None, "project_id", "created_at", "id"),
    Index(None, "expiration"),
    Index(None, "store"),
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
    *_timestamps(),
    UniqueConstraint("secret_id", "service", "resource_type", "resource_id"),
    Index(None, "secret_id", "created_at"),
)

# --- containers (spec §5) ------------------------------------------------------------------------------

containers = Table(
    "containers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("name", String(255)),
    Column("type", String(16), nullable=False),
    Column("creator_id", String(255)),
    *_timestamps(),
    Index(None, "project_id", "created_at", "id"),
)

# Deleting a secret removes it from the containers that hold it (as in Barbican, where the link row is
# soft-deleted with the secret); deleting a container never deletes its secrets.
container_secrets = Table(
    "container_secrets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("container_id", String(36), ForeignKey("containers.id", ondelete="CASCADE"), nullable=False),
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255)),
    Column("position", Integer, nullable=False),
    UniqueConstraint("container_id", "secret_id"),
    Index(None, "secret_id"),
)

container_consumers = Table(
    "container_consumers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("container_id", String(36), ForeignKey("containers.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("name", String(36), nullable=False),
    Column("url", String(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("container_id", "name", "url"),
)

# --- ACLs (spec §7) ------------------------------------------------------------------------------------

secret_acls, secret_acl_users = _acl_tables("secret")
container_acls, container_acl_users = _acl_tables("container")

# --- orders (spec §6): also the job queue the order workers claim from ---------------------------------

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("meta", Text, nullable=False),
    Column("creator_id", String(255)),
    Column("secret_id", String(36)),
    Column("container_id", String(36)),
    Column("error_status_code", String(16)),
    Column("error_reason", String(255)),
    # Parameters that must not be shown back (an asymmetric order's passphrase), sealed under the project KEK.
    Column("sealed_params", LargeBinary(4096)),
    Column("kek_id", String(36), ForeignKey("project_keks.id")),
    *_timestamps(),
    # The lease of the worker processing the order; an expired lease means the worker died: re-claim.
    Column("claimed_by", String(64)),
    Column("claimed_until", Timestamp),
    Column("attempts", Integer, nullable=False, default=0),
    Index(None, "project_id", "created_at", "id"),
    Index(None, "status", "claimed_until"),
)

# --- quotas (spec §8) and the per-project row that serialises quota-checked creates -------------------

project_quotas = Table(
    "project_quotas",
    metadata,
    Column("project_id", String(255), primary_key=True),
    Column("secrets", Integer),
    Column("orders", Integer),
    Column("containers", Integer),
    Column("consumers", Integer),
    Column("cas", Integer),
    *_timestamps(),
)

# A row per project that creates under a finite quota lock (SELECT ... FOR UPDATE) before counting, so two
# concurrent creates at the quota edge cannot both pass.
project_locks = Table(
    "project_locks",
    metadata,
    Column("project_id", String(255), primary_key=True),
)

# --- secret stores (spec §9): the stores come from configuration; only preferences are stored ----------

project_secret_stores = Table(
    "project_secret_stores",
    metadata,
    Column("project_id", String(255), primary_key=True),
    Column("store_name", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

# --- standalone tokens (auth = "token") -----------------------------------------------------------------

# Bearer tokens donjon issues itself. Only a keyed hash of each token's secret part is stored.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("roles", String(255), nullable=False),
    Column("description", String(255)),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp),
    Column("revoked_at", Timestamp),
    # Vault's num_uses: 0 is unlimited; uses_left is spent one per authenticated request (migration 0012).
    Column("num_uses", Integer, nullable=False, server_default="0"),
    Column("uses_left", Integer, nullable=False, server_default="0"),
    Index(None, "project_id"),
)

# --- lifecycle (donjon extensions): versions, tombstones, wrapped hand-off tokens ----------------------

# Previous payloads of a rotated secret, readable until ``expires_at`` (the grace period), then reaped.
secret_versions = Table(
    "secret_versions",
    metadata,
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("kek_id", String(36), ForeignKey("project_keks.id")),
    Column("ciphertext", Blob, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Index(None, "expires_at"),
    Index(None, "project_id"),
)

# What remains of a secret whose payload is gone: when and why. Never any payload, KEK id or ciphertext.
secret_tombstones = Table(
    "secret_tombstones",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("name", String(255)),
    Column("secret_type", String(32), nullable=False),
    Column("creator_id", String(255)),
    Column("created_at", Timestamp, nullable=False),
    Column("expiration", Timestamp),
    Column("deleted_at", Timestamp, nullable=False),
    # "deleted" (DELETE), "expired" (the reaper), "read-limit" (max_reads reached)
    Column("deleted_reason", String(16), nullable=False),
    Index(None, "project_id", "deleted_at"),
    Index(None, "deleted_at"),
)

# Single-use tokens that fetch a secret's payload once. Only a keyed hash of the token's secret part is stored.
secret_wraps = Table(
    "secret_wraps",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    # Who made the token (JSON: project_id, user_id, roles, system_scope): at unwrap, they must still be
    # allowed to read the payload.
    Column("creator", Text, nullable=False),
    Index(None, "secret_id"),
    Index(None, "expires_at"),
)

# --- transport keys (spec §10) ---------------------------------------------------------------------------
# Barbican's cloud-wide rows of opaque public keys (no project): stored and listed, used by no secret store.
transport_keys = Table(
    "transport_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("plugin_name", String(255), nullable=False),
    Column("transport_key", Text, nullable=False),
    *_timestamps(),
    Index(None, "created_at", "id"),
)

# --- KV v2 (the Vault API): a KV entry is a secret; these hold what Vault keeps beyond donjon's versions ---

# One row per KV key: its path (the secret's name, unique per project) and Vault's per-key settings.
kv_entries = Table(
    "kv_entries",
    metadata,
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("path", String(255), nullable=False),
    Column("max_versions", Integer, nullable=False),  # 0: the mount's default (10)
    Column("cas_required", Boolean, nullable=False),
    Column("delete_version_after", Integer, nullable=False),  # seconds; 0: never
    Column("custom_metadata", Text),  # a JSON object of strings, or NULL
    Column("metadata_version", Integer, nullable=False),  # settings writes so far (Vault's current_metadata_version)
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("project_id", "path"),
)

# A KV version's state: soft-deleted (deletion_time) or destroyed (its ciphertext is gone).
kv_versions = Table(
    "kv_versions",
    metadata,
    Column("secret_id", String(36), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("created_at", Timestamp, nullable=False),
    Column("deletion_time", Timestamp),
    Column("destroyed", Boolean, nullable=False),
)
