"""``donjon audit``: check the tamper-evident audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from donjon.audit import audit_paths
from donjon.audit.chain import load_audit_key
from donjon.audit.verify import verify
from donjon.cli.common import config_option, load_settings
from donjon.errors import ConfigurationError


@click.group()
def audit() -> None:
    """The audit log (CADF events, hash-chained and HMAC-sealed)."""


@audit.command("verify")
@config_option
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path), help="The log (default: audit.path).")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="The key (default: audit.key_file).")
@click.option("--head", type=click.Path(dir_okay=False, path_type=Path), help="The head state (default: PATH.head).")
def verify_command(config: Path | None, path: Path | None, key: Path | None, head: Path | None) -> None:
    """Check every record's MAC and link, and the log's length against its head state.

    Exits 0 and prints the record count on an intact log; exits 1 naming the first bad line otherwise.
    """
    if path is None or key is None:
        default_path, default_key = audit_paths(load_settings(config))
        path, key = path or default_path, key or default_key
    try:
        secret = load_audit_key(key, create=False)
    except ConfigurationError as exc:
        raise click.ClickException(exc.message) from None
    if not path.is_file():
        raise click.ClickException(f"no audit log at {path}")
    verdict = verify(path, secret, head)
    click.echo(f"{path}: {verdict}")
    if not verdict.ok:
        sys.exit(1)
