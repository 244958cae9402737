"""``donjon manage purge-project`` and ``keystone-listener``: crypto-shredding of a project's data."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from donjon.cli.common import config_option, load_settings
from donjon.errors import ConfigurationError
from donjon.keystone_listener import listen
from donjon.services.purge import purge_project as purge
from donjon.services.stores import StoreRegistry
from donjon.storage import purge as repo
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


@click.command("keystone-listener")
@config_option
def keystone_listener(config: Path | None) -> None:
    """Purge the data of every project that Keystone deletes, until interrupted.

    Listens to Keystone's identity.project.deleted notifications (settings: keystone_notifications) and
    runs purge-project for each. Run one per node, as a service: listeners share the notifications.
    """
    settings = load_settings(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    database = Database(settings.effective_database_url, pool_size=4)
    stores = StoreRegistry.open(settings.configured_stores(), settings.default_store)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        listen(
            settings.keystone_notifications,
            lambda project_id: purge(database, project_id, stores),
            stop,
            lambda where: click.echo(f"listening for identity.project.deleted on {where}", err=True),
        )
    except ConfigurationError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        stores.close()
        database.dispose()
