"""``donjon manage rotate-root`` and ``donjon manage rotate-kek``: online key rotation, resumable."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from donjon.cli.common import config_option, load_settings
from donjon.config import Settings
from donjon.errors import ConfigurationError
from donjon.keystores import Keystore
from donjon.keystores.file import add_root_key, retire_root_keys
from donjon.keystores.keyring import open_chain
from donjon.services.rotation import KekRotation, RootRotation
from donjon.storage import keks
from donjon.storage.database import Database

# Exit codes: 0 done; 1 error; 2 done as far as possible, run again (see the message).
INCOMPLETE = 2


def _open(settings: Settings) -> Keystore:
    try:
        return open_chain(settings.keystore_chain())
    except ConfigurationError as exc:
        raise click.ClickException(exc.message) from None


@click.command("rotate-root")
@config_option
@click.option(
    "--add-file-key", is_flag=True, help="File keystore: first put a new current root key in front of the key file."
)
@click.option(
    "--retire", is_flag=True, help="File keystore: afterwards, drop old root keys that no KEK is wrapped under."
)
@click.option("--batch", type=click.IntRange(1, 10_000), default=200, show_default=True)
def rotate_root(config: Path | None, add_file_key: bool, retire: bool, batch: int) -> None:
    """Rewrap every project KEK under the current root key, while servers run.

    To move to another keystore, make it `keystore` in the configuration and list the old one under
    `previous_keystores`, restart the servers, run this, then remove `previous_keystores`. Interrupted,
    it is simply run again.
    """
    settings = load_settings(config)
    key_file = Path(settings.keystore_options()["path"]) if settings.keystore.type == "file" else None
    if (add_file_key or retire) and key_file is None:
        raise click.ClickException("--add-file-key and --retire apply to the file keystore only")
    if add_file_key:
        assert key_file is not None
        click.echo(f"new root key {add_root_key(key_file)} in {key_file}", err=True)
    db = Database(settings.effective_database_url, pool_size=2)
    keystore = _open(settings)
    try:
        rotation = RootRotation(db, keystore, batch=batch)
        with click.progressbar(length=rotation.remaining(), label="rewrapping KEKs", file=sys.stderr) as bar:
            report = rotation.run(bar.update)
        click.echo(f"root {report.root_key_id}: {report.rewrapped} KEKs rewrapped, {report.remaining} left", err=True)
        if report.unreadable:
            raise click.ClickException(
                f"{len(report.unreadable)} KEKs could not be unwrapped by any configured keystore "
                "(list the keystore that holds their root under previous_keystores)"
            )
        if retire and key_file is not None:
            with db.read() as conn:
                in_use = set(keks.count_by_root(conn))
            dropped = retire_root_keys(key_file, keep=in_use)
            click.echo(f"retired {len(dropped)} old root keys from {key_file}", err=True)
        if report.remaining:
            click.echo(
                f"{report.remaining} KEKs are still under an old root: servers started before the new root wrap "
                "new KEKs with the one they loaded. Restart them, then run rotate-root again.",
                err=True,
            )
            sys.exit(INCOMPLETE)
    finally:
        keystore.close()
        db.dispose()


@click.command("rotate-kek")
@config_option
@click.option("--project", "projects", multiple=True, help="Project to rotate (repeatable).")
@click.option("--all-projects", is_flag=True, help="Rotate the KEK of every project.")
@click.option(
    "--settle-seconds",
    type=float,
    help="How long servers may keep sealing with the old KEK (default: kek_cache_seconds + 5).",
)
@click.option("--finish", is_flag=True, help="Do not make a new KEK: finish an earlier, interrupted rotation.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=200, show_default=True)
def rotate_kek(
    config: Path | None,
    projects: tuple[str, ...],
    all_projects: bool,
    settle_seconds: float | None,
    finish: bool,
    batch: int,
) -> None:
    """Give projects a new KEK and re-seal their secrets under it in the background; reads never fail."""
    if bool(projects) == all_projects:
        raise click.UsageError("name --project P (one or more) or --all-projects")
    settings = load_settings(config)
    settle = settle_seconds if settle_seconds is not None else settings.kek_cache_seconds + 5
    db = Database(settings.effective_database_url, pool_size=2)
    keystore = _open(settings)
    incomplete = False
    try:
        rotation = KekRotation(db, keystore, batch=batch)
        targets = rotation.projects() if all_projects else list(projects)
        for project_id in targets:
            if not finish:
                click.echo(f"{project_id}: new KEK; waiting up to {settle:.0f}s for servers' caches", err=True)
            with click.progressbar(length=0, label=f"re-sealing {project_id}", file=sys.stderr) as bar:
                report = rotation.rotate(project_id, settle_seconds=settle, on_progress=bar.update, new_key=not finish)
            click.echo(
                f"{project_id}: {report.resealed} rows re-sealed, {len(report.retired)} old KEKs retired", err=True
            )
            if report.still_referenced:
                incomplete = True
                click.echo(
                    f"{project_id}: {len(report.still_referenced)} old KEKs still needed; run again with --finish",
                    err=True,
                )
    finally:
        keystore.close()
        db.dispose()
    if incomplete:
        sys.exit(INCOMPLETE)
