"""``donjon manage``: the operator's commands on storage, keys and projects."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from donjon.cli.common import config_option, load_settings
from donjon.cli.purge import keystone_listener, purge_project
from donjon.cli.rotation import rotate_kek, rotate_root
from donjon.cli.stores import migrate_store
from donjon.storage import migrate
from donjon.storage.database import Database


@click.group()
def manage() -> None:
    """Operator commands."""


@manage.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
@click.argument("revision", default="head")
def db_upgrade(config: Path | None, revision: str) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    database = Database(load_settings(config).effective_database_url, pool_size=1)
    try:
        migrate.upgrade(database, revision)
        click.echo(f"schema at {migrate.current_revision(database)}")
    finally:
        database.dispose()


@db.command("current")
@config_option
def db_current(config: Path | None) -> None:
    """Show the schema revision and whether it is the newest."""
    database = Database(load_settings(config).effective_database_url, pool_size=1)
    try:
        current, head = migrate.current_revision(database), migrate.head_revision(database)
        click.echo(f"current: {current or 'none'}; newest: {head}")
        if current != head:
            sys.exit(1)
    finally:
        database.dispose()


manage.add_command(rotate_root)
manage.add_command(rotate_kek)
manage.add_command(purge_project)
manage.add_command(keystone_listener)
manage.add_command(migrate_store)
