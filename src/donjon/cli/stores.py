"""``donjon manage migrate-store``: move payloads between secret stores while servers run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from donjon.cli.common import config_option, load_settings
from donjon.errors import DonjonError
from donjon.keystores.keyring import open_chain
from donjon.services.project_keys import ProjectKeys
from donjon.services.store_migration import StoreMigration
from donjon.services.stores import StoreRegistry
from donjon.storage.database import Database

# Exit codes: 0 every secret moved; 1 error; 2 some secrets were left where they are (listed on stderr).
INCOMPLETE = 2


@click.command("migrate-store")
@config_option
@click.option("--from", "source", required=True, help="Store that holds the payloads now ('database' or a name).")
@click.option("--to", "target", required=True, help="Store to move them to ('database' or a configured name).")
@click.option("--project", "project_id", help="Move only this project's secrets (default: every project).")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True)
def migrate_store(config: Path | None, source: str, target: str, project_id: str | None, batch: int) -> None:
    """Move secrets' payloads from one secret store to another, e.g. database -> kmip.

    Each secret moves on its own and is read from wherever its row points at every moment, so servers keep
    serving meanwhile. Interrupted, the command is simply run again. It does not change where new secrets
    go: set default_store or a project's preferred store for that.
    """
    settings = load_settings(config)
    db = Database(settings.effective_database_url, pool_size=2)
    try:
        keystore = open_chain(settings.keystore_chain())
        registry = StoreRegistry.open(settings.configured_stores(), settings.default_store)
    except DonjonError as exc:
        db.dispose()
        raise click.ClickException(exc.message) from None
    try:
        keys = ProjectKeys(db, keystore, settings.kek_cache_seconds, max_projects=settings.kek_cache_max_projects)
        migration = StoreMigration(db, keys, registry, batch=batch)
        label = f"moving {source} -> {target}"
        with click.progressbar(length=migration.pending(source, project_id), label=label, file=sys.stderr) as bar:
            report = migration.run(source, target, project_id, on_progress=bar.update)
        click.echo(f"{report.moved} secrets moved from {source} to {target}", err=True)
        if report.skipped:
            for secret_id in report.skipped:
                click.echo(f"left in {source}: {secret_id} ({report.reasons[secret_id]})", err=True)
            sys.exit(INCOMPLETE)
    except DonjonError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        registry.close()
        keystore.close()
        db.dispose()
