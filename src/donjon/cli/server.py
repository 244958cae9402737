"""``donjon server``: prepare the data dir, root key and schema once, then serve the API with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click

import donjon
from donjon import listener
from donjon.audit import prepare_audit
from donjon.auth.dev import require_loopback
from donjon.auth.tokens import load_token_key
from donjon.cli.banner import next_steps
from donjon.cli.common import apply_flags, config_option, load_settings
from donjon.config import Settings
from donjon.errors import ConfigurationError
from donjon.keystores.keyring import open_chain
from donjon.services.stores import StoreRegistry
from donjon.storage import migrate
from donjon.storage.database import Database


@click.command()
@config_option
@click.option(
    "--dev", is_flag=True, help="Dev auth (X-Project-Id), loopback only: the default; an error if auth says otherwise."
)
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 9311).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default 2).")
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database schema before serving.")
@click.option("--access-log/--no-access-log", default=None, help="Log one line per request (default: log.access).")
def server(
    config: Path | None,
    dev: bool,
    host: str | None,
    port: int | None,
    workers: int | None,
    no_migrate: bool,
    access_log: bool | None,
) -> None:
    """Serve the API (Barbican v1) until interrupted."""
    # Flags become environment variables so that every worker process builds the same settings; --dev with
    # DONJON_AUTH=token (or auth = "token" in the file) is refused, not silently dev.
    flags = [("--host", "host", host), ("--port", "port", port), ("--workers", "workers", workers)]
    apply_flags(config, [*flags, ("--dev", "auth", "dev" if dev else None)])
    if no_migrate:
        os.environ["DONJON_MIGRATE_ON_START"] = "false"
    if access_log is not None:
        os.environ["DONJON_LOG__ACCESS"] = str(access_log).lower()
    settings = load_settings(config)
    try:
        if settings.auth == "dev":
            require_loopback(settings.host)
        transport_note = listener.check_transport(settings)
        sock = listener.bind(settings.host, settings.port)  # first: a port in use fails fast
        prepare(settings)
    except ConfigurationError as exc:
        raise click.ClickException(exc.message) from None

    from donjon.observability.metrics import prepare_multiprocess_dir

    if settings.workers > 1:
        # Each worker counts in files here and /metrics sums them; emptied so that counters start at zero.
        prepare_multiprocess_dir(settings.data_dir / "run" / "prometheus")

    scheme = "https" if settings.tls.enabled else "http"
    url = f"{scheme}://{settings.host}:{settings.port}"
    click.echo(
        f"donjon {donjon.__version__} serving on {url} "
        f"({settings.workers} workers, auth={settings.auth}, data dir {settings.data_dir})",
        err=True,
    )
    if transport_note:
        click.echo(transport_note, err=True)
    click.echo(next_steps(settings, _client_url(url)), err=True)
    listener.serve(settings, sock)


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


def _client_url(url: str) -> str:
    """The URL a client on this host uses: a wildcard listen address is reached on loopback."""
    for wildcard in ("://0.0.0.0:", "://[::]:", "://:::"):
        url = url.replace(wildcard, "://127.0.0.1:")
    return url
