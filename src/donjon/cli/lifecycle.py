"""``donjon manage purge-project``: crypto-shredding of a project's data."""

from __future__ import annotations

from pathlib import Path

import click

from donjon.cli.common import config_option, load_settings
from donjon.services.lifecycle import purge_project as purge
from donjon.services.stores import StoreRegistry
from donjon.storage import lifecycle as repo
from donjon.storage.database import Database


@click.command("purge-project")
@config_option
@click.argument("project_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_project(config: Path | None, project_id: str, yes: bool) -> None:
    """Destroy PROJECT_ID's keys, then delete all its data.

    The project's KEKs are deleted first, in their own transaction: from then on nothing of the project can
    be decrypted, from this database or from any backup taken afterwards, even if the rest is interrupted.
    Then its secrets (with versions, metadata, ACLs, consumers, wrap tokens, tombstones), containers,
    orders and quotas are deleted. Running servers may keep an unwrapped KEK in memory for up to
    kek_cache_seconds: purge projects that no longer serve requests.
    """
    settings = load_settings(config)
    database = Database(settings.effective_database_url, pool_size=1)
    # The project's objects in external stores are destroyed too (after its KEKs, before its rows).
    stores = StoreRegistry.open(settings.configured_stores(), settings.default_store)
    try:
        with database.read() as conn:
            counts = repo.project_counts(conn, project_id)
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        if not yes:
            click.confirm(
                f"Purge project {project_id!r} ({summary})? Its data becomes unrecoverable", abort=True, err=True
            )
        done = purge(database, project_id, stores)
        for name, n in done.items():
            if n:
                click.echo(f"{name}: {n}")
        click.echo(f"project {project_id} purged")
    finally:
        stores.close()
        database.dispose()
