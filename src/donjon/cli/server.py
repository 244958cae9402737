"""``donjon server``: prepare the data dir, root key and schema once, then serve the API with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click

import donjon
from donjon.audit import prepare_audit
from donjon.auth.dev import require_loopback
from donjon.auth.tokens import load_token_key
from donjon.cli.common import config_option, load_settings
from donjon.config import Settings
from donjon.errors import ConfigurationError
from donjon.keystores.keyring import open_chain
from donjon.services.stores import StoreRegistry
from donjon.storage import migrate
from donjon.storage.database import Database


@click.command()
@config_option
@click.option("--dev", is_flag=True, help="Embedded default: SQLite + key file in the data dir, dev auth, loopback.")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 9311).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default 2).")
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Where SQLite and the key file live."
)
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database schema before serving.")
@click.option("--access-log/--no-access-log", default=None, help="Log one line per request (default: log.access).")
def server(
    config: Path | None,
    dev: bool,
    host: str | None,
    port: int | None,
    workers: int | None,
    data_dir: Path | None,
    no_migrate: bool,
    access_log: bool | None,
) -> None:
    """Serve the API (Barbican v1) until interrupted."""
    # Flags become environment variables so that every worker process builds the same settings.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers), ("DATA_DIR", data_dir)):
        if value is not None:
            os.environ[f"DONJON_{name}"] = str(value)
    if no_migrate:
        os.environ["DONJON_MIGRATE_ON_START"] = "false"
    if dev:
        os.environ["DONJON_AUTH"] = "dev"
    if access_log is not None:
        os.environ["DONJON_LOG__ACCESS"] = str(access_log).lower()
    settings = load_settings(config)
    try:
        if settings.auth == "dev":
            require_loopback(settings.host)
        prepare(settings)
    except ConfigurationError as exc:
        raise click.ClickException(exc.message) from None

    import uvicorn

    from donjon.observability.logs import logging_config
    from donjon.observability.metrics import prepare_multiprocess_dir

    if settings.workers > 1:
        # Each worker counts in files here and /metrics sums them; emptied so that counters start at zero.
        prepare_multiprocess_dir(settings.data_dir / "run" / "prometheus")

    click.echo(
        f"donjon {donjon.__version__} serving on http://{settings.host}:{settings.port} "
        f"({settings.workers} workers, auth={settings.auth}, data dir {settings.data_dir})",
        err=True,
    )
    uvicorn.run(
        "donjon.asgi:create",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings.log, settings.log_level),
        # donjon.access logs each request instead (route templates, not paths with ids: docs/operations.md).
        access_log=False,
        server_header=False,
        proxy_headers=False,
        # Bounded request heads: 431 past limits.max_header_bytes / max_request_head_bytes (http_protocol.py).
        http="donjon.http_protocol:BoundedHttpToolsProtocol",
        backlog=2048,
    )


def prepare(settings: Settings) -> None:
    """Once, before workers start: the data dir, the root key, the secret stores, the schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    open_chain(settings.keystore_chain()).close()
    # Each worker opens the stores too; a mistake found here is one clear message rather than each worker's
    # traceback.
    StoreRegistry.open(settings.configured_stores(), settings.default_store).close()
    if settings.auth == "token":
        load_token_key(settings.effective_token_key_file, create=True)
    prepare_audit(settings)
    if settings.auth == "keystone":
        try:
            from donjon.auth.keystone import check_config
        except ImportError:
            raise ConfigurationError("keystone mode needs keystoneauth1: pip install 'donjon[keystone]'") from None
        check_config(settings.keystone)
    if settings.migrate_on_start:
        db = Database(settings.effective_database_url, pool_size=1)
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()
