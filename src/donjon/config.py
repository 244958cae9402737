"""Server configuration: defaults, then a TOML file, then ``DONJON_*`` environment variables.

The file is named by ``DONJON_CONFIG`` (or ``donjon server --config``). Nested sections use ``__`` in
environment names, e.g. ``DONJON_KEYSTORE__TYPE=file``. The root key never lives here: the config only says
*where* the keystore is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from donjon.observability.settings import LogConfig, MetricsConfig
from donjon.options import ConfiguredOptions, Origin

CONFIG_ENV = "DONJON_CONFIG"


class Section(BaseModel):
    """A table of the settings: a key it does not have is an error (config_errors.py names the closest one)."""

    model_config = ConfigDict(extra="forbid")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "donjon"


class StoreConfig(Section):
    """An external secret store (where payloads live): a store ``type`` ("kmip", "vault") and its ``options``."""

    type: str
    options: dict[str, Any] = Field(default_factory=dict)


class KeystoreConfig(Section):
    """Where the root key lives: a plugin ``type`` and that plugin's own ``options``."""

    type: str = "file"
    options: dict[str, Any] = Field(default_factory=dict)


class LimitsConfig(Section):
    # Barbican's defaults (max_allowed_request_size_in_bytes, max_allowed_secret_in_bytes, paging).
    max_request_bytes: int = 25_000
    max_secret_bytes: int = 20_000
    default_page_size: int = 10
    max_page_size: int = 100
    # Request heads (donjon server's HTTP layer, before anything else runs): one header's name and value,
    # and the request line with every header. Past either: 431 and the connection is closed.
    max_header_bytes: int = Field(default=8192, ge=256)
    max_request_head_bytes: int = Field(default=32768, ge=1024)


class QuotaConfig(Section):
    """Default quotas per project (Barbican's [quotas] quota_*): negative = unlimited, 0 = disabled."""

    secrets: int = -1
    orders: int = -1
    containers: int = -1
    consumers: int = -1
    cas: int = -1


class OrderConfig(Section):
    # How often an idle order worker looks for orders queued by other nodes.
    poll_seconds: float = 1.0
    # How long a claimed order stays with its worker before another may take it over (the worker died).
    lease_seconds: float = 60.0
    # Attempts before an order that keeps failing unexpectedly ends in ERROR.
    max_attempts: int = 5
    # Run an order worker thread inside each server process.
    run_in_server: bool = True
    # POST /v1/orders answers once the order is ACTIVE or ERROR if that takes at most this long (Barbican's
    # clients GET the order once and expect it done), else 202 with the order still PENDING. 0: never wait.
    answer_within_seconds: float = Field(default=2.0, ge=0, le=60)
    # Requests waiting at once for their order (each holds only its connection, no thread); more answer at once.
    max_waiting_answers: int = Field(default=100, ge=0)


class LifecycleConfig(Section):
    """The life of secrets after creation (donjon extensions): expiry reaping, versions, wrapped hand-off."""

    # The reaper deletes a secret's ciphertext this long after its expiration (0: at the next pass).
    reap_delay_seconds: float = 0.0
    # How often each server process's reaper looks for expired secrets and versions.
    reap_interval_seconds: float = 30.0
    # Rows handled per reaper transaction.
    reap_batch_size: int = Field(default=100, ge=1, le=10_000)
    # Run a reaper thread inside each server process (safe on N nodes: work is claimed in the database).
    run_in_server: bool = True
    # How long a tombstone (when and why a secret's payload went) is kept; negative: forever.
    tombstone_retention_seconds: float = 90 * 86400.0
    # How long a previous version stays readable after a rotation, before the reaper deletes it.
    version_grace_seconds: float = 86400.0
    # Wrapped hand-off tokens: default and maximum lifetime.
    wrap_default_ttl_seconds: int = Field(default=300, ge=1)
    wrap_max_ttl_seconds: int = Field(default=86400, ge=1)
    # Unexpired wrap tokens one secret may have at once (more: 409 until one is used or expires).
    wrap_max_outstanding: int = Field(default=20, ge=1)


class KeystoneConfig(Section):
    """Keystone mode: tokens are validated against this Keystone with donjon's own service credentials.

    The service user needs a role that lets it validate other users' tokens (Keystone's default policy:
    ``service`` on a project, or a system reader). Its password comes from ``password`` or, better, from
    ``password_file`` (a file readable by donjon only; surrounding whitespace is ignored).
    """

    # Keystone's identity API, e.g. https://keystone.example.org:5000/v3 (``/v3`` is added when missing).
    auth_url: str = ""
    # Advertised to clients in 401s (``WWW-Authenticate: Keystone uri="..."``); default: auth_url.
    www_authenticate_uri: str = ""
    username: str = "donjon"
    password: SecretStr | None = None
    password_file: Path | None = None
    user_domain_name: str = "Default"
    project_name: str = "service"
    project_domain_name: str = "Default"
    # How long a validated token is trusted without asking Keystone again (bounds revocation latency;
    # never longer than the token's own expiry).
    cache_seconds: float = 60.0
    # Seconds for each HTTP request to Keystone.
    timeout: float = 5.0
    # CA bundle for an https auth_url (default: the system's).
    cafile: Path | None = None


class AuditConfig(Section):
    """CADF audit events (docs/security.md, "Audit"): a hash-chained, HMAC-sealed JSON-lines file, and
    oslo.messaging notifications where configured."""

    enabled: bool = True
    # The JSON-lines log; its signed head state is beside it (``<path>.head``). Default: audit.log in data_dir.
    path: Path | None = None
    # The key of the records' HMACs (0600, generated on first start). Default: audit.key in data_dir.
    key_file: Path | None = None
    # True: a request whose audit event no sink accepts fails with 503, and a "pending" event is written
    # before every audited request reaches its handler (no effect without a record).
    fail_closed: bool = True
    # always: fdatasync the log after each record (survives power loss); never: the OS page cache only.
    fsync: Literal["always", "never"] = "always"
    # Also publish each event as an oslo.messaging notification (best effort; the `audit` extra).
    notifications: bool = False
    # e.g. rabbit://user:password@broker:5672/ (oslo.messaging's transport URL).
    transport_url: SecretStr | None = None
    topic: str = "notifications"


class KeystoneNotificationsConfig(Section):
    """``donjon manage keystone-listener``: a project deleted in Keystone has its donjon data purged
    (crypto-shredded) as ``donjon manage purge-project`` does. Needs oslo.messaging (the `audit` extra)."""

    # Keystone's notification transport, e.g. rabbit://user:password@broker:5672/. Required by the listener.
    transport_url: SecretStr | None = None
    # Keystone publishes on its control exchange ("keystone") under [oslo_messaging_notifications] topics.
    exchange: str = "keystone"
    topic: str = "notifications"
    # Listeners in one pool share the notifications (each reaches one of them): run one per node for HA.
    pool: str = "donjon"
    # A purge that fails (database down) is put back on the queue and retried, instead of dropped.
    allow_requeue: bool = True


class UiConfig(Section):
    """The web console at ``/ui`` (docs/console.md): a client of the API, served from the same origin."""

    enabled: bool = True
    # How long a revealed payload stays on screen before the console hides it again.
    reveal_seconds: float = Field(default=30.0, gt=0, le=600)


class VaultApiConfig(Section):
    """The Vault-compatible API under ``/v1/sys``, ``/v1/auth/token`` and its engines' mounts (docs/vault-api.md)."""

    enabled: bool = True
    # Where KV v2 is mounted: ``/v1/<kv_mount>/data/<path>``. Barbican's own path segments are refused, so
    # the two APIs never claim the same URL.
    kv_mount: str = Field(default="secret", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")

    @field_validator("kv_mount")
    @classmethod
    def _not_barbican(cls, value: str) -> str:
        taken = {"secrets", "containers", "orders", "quotas", "project-quotas", "secret-stores", "audit", "unwrap"}
        if value in taken | {"transport_keys", "sys", "auth", "transit"}:
            raise ValueError(f"vault.kv_mount {value!r} is a path the server already serves")
        return value


class TlsConfig(Section):
    """HTTPS on ``donjon server``'s own listener (docs/operations.md): TLS 1.2 or later."""

    # PEM: the server's certificate, then its intermediates. Re-read with key_file on SIGHUP.
    cert_file: Path | None = None
    # PEM private key, unencrypted and readable by donjon only (default: in cert_file).
    key_file: Path | None = None
    # PEM CA bundle: every client must then present a certificate signed by one of them (mutual TLS).
    client_ca_file: Path | None = None
    # A TLS-terminating proxy is in front: token and keystone modes may then serve plain HTTP on a
    # non-loopback address (otherwise refused: tokens would cross the network in clear).
    behind_proxy: bool = False

    @model_validator(mode="after")
    def _needs_cert(self) -> TlsConfig:
        if self.cert_file is None and (self.key_file or self.client_ca_file):
            raise ValueError("tls.key_file and tls.client_ca_file need tls.cert_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DONJON_", env_nested_delimiter="__", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 9311
    workers: int = 2
    data_dir: Path = Field(default_factory=default_data_dir)
    # Empty: derived from each request (X-Forwarded-Proto + Host), as Barbican does with a blank host_href.
    host_href: str = ""
    database_url: str = ""
    # dev: Barbican's unauthenticated mode (X-Project-Id), loopback only. token: donjon-issued bearer tokens.
    # keystone: X-Auth-Token validated against Keystone (the [keystone] section).
    auth: Literal["dev", "token", "keystone"] = "dev"
    # The key of the tokens' keyed hashes; the same file on every node. Default: token.key in the data dir.
    token_key_file: Path | None = None
    # How long a validated token is trusted without a database look-up (bounds revocation latency).
    token_cache_seconds: float = 10.0
    # An oslo.policy YAML file whose rules override the defaults (Barbican's rule names).
    policy_file: Path | None = None
    # Secure RBAC (reader/member/admin). False ORs in Barbican's legacy rules (creator/observer/audit).
    enforce_new_defaults: bool = True
    keystone: KeystoneConfig = Field(default_factory=KeystoneConfig)
    keystore: KeystoreConfig = Field(default_factory=KeystoreConfig)
    # Keystores being retired by a root rotation: they only unwrap KEKs not yet rewrapped under `keystore`.
    previous_keystores: list[KeystoreConfig] = Field(default_factory=list)
    # External secret stores by name; "database" (donjon's envelope in SQL) is built in and the default.
    stores: dict[str, StoreConfig] = Field(default_factory=dict)
    # Where new secrets go unless their project prefers another store (/v1/secret-stores/{id}/preferred).
    default_store: str = "database"
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    quotas: QuotaConfig = Field(default_factory=QuotaConfig)
    orders: OrderConfig = Field(default_factory=OrderConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    keystone_notifications: KeystoneNotificationsConfig = Field(default_factory=KeystoneNotificationsConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    vault: VaultApiConfig = Field(default_factory=VaultApiConfig)
    # /metrics and the server log (docs/operations.md, "Metrics" and "Logs").
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    # How long an unwrapped project KEK stays in a worker's memory before it is unwrapped again.
    kek_cache_seconds: float = 900.0
    # At most this many unwrapped KEKs per worker (about one per active project); past it the least recently
    # used is dropped and unwrapped again on its next use.
    kek_cache_max_projects: int = Field(default=10_000, ge=1)
    migrate_on_start: bool = True
    log_level: str = "info"

    # The TOML file these settings were read from, if any: plugin option errors name it.
    _config_file: Path | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        path = os.environ.get(CONFIG_ENV)
        self._config_file = Path(path) if path else None

    @field_validator("host_href")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{CONFIG_ENV} names {path!r}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'donjon.sqlite'}"

    @property
    def effective_token_key_file(self) -> Path:
        return self.token_key_file or self.data_dir / "token.key"

    def keystore_options(self) -> ConfiguredOptions:
        """The keystore's options, with the file keystore's path defaulting into the data dir."""
        options = self._options(self.keystore.options, "keystore", "options")
        if self.keystore.type == "file":
            options.setdefault("path", str(self.data_dir / "root.key"))
        return options

    def configured_stores(self) -> dict[str, tuple[str, ConfiguredOptions]]:
        return {
            name: (store.type, self._options(store.options, "stores", name, "options"))
            for name, store in self.stores.items()
        }

    def keystore_chain(self) -> list[tuple[str, ConfiguredOptions]]:
        """The current keystore first, then the previous ones (unwrap only) that a root rotation retires."""
        return [(self.keystore.type, self.keystore_options())] + [
            (k.type, self._options(k.options, "previous_keystores", i, "options"))
            for i, k in enumerate(self.previous_keystores)
        ]

    def _options(self, values: dict[str, Any], *section: str | int) -> ConfiguredOptions:
        """A plugin's options, remembering where they were configured (their errors name the file or variable)."""
        return ConfiguredOptions(values, Origin(section, self._config_file))
