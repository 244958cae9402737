"""``donjon token``: issue, list and revoke standalone bearer tokens (run on a server host: it needs the
database and the token key file)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from donjon.auth.tokens import TokenService, expires_in, load_token_key, parse_ttl
from donjon.cli.common import config_option, load_settings
from donjon.errors import DonjonError
from donjon.storage import migrate
from donjon.storage.database import Database
from donjon.timeutil import isoformat, utcnow


@contextmanager
def _service(config: Path | None) -> Iterator[TokenService]:
    settings = load_settings(config)
    db = Database(settings.effective_database_url, pool_size=1)
    try:
        if settings.migrate_on_start:
            migrate.upgrade(db)
        yield TokenService(db, load_token_key(settings.effective_token_key_file, create=True), cache_seconds=0)
    except DonjonError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        db.dispose()


@click.group()
def token() -> None:
    """Standalone bearer tokens (auth = "token")."""


@token.command()
@config_option
@click.option("--project", default="admin", show_default=True, help="Project the admin token is scoped to.")
@click.option("--user", default="admin", show_default=True)
def bootstrap(config: Path | None, project: str, user: str) -> None:
    """Create the first admin token. Works once: only while no token exists. The token is shown once."""
    with _service(config) as tokens:
        issued = tokens.bootstrap(project_id=project, user_id=user)
    if issued is None:
        raise click.ClickException("tokens exist already; use 'donjon token create' with an admin token's access")
    click.echo(issued.token)
    click.echo(f"admin token {issued.record.id} for project {project}: store it now, it is not kept", err=True)


@token.command()
@config_option
@click.option("--project", required=True)
@click.option("--user", help="The user the token acts as (default: a name derived from the token id).")
@click.option("--role", "roles", multiple=True, required=True, help="reader, member, admin... (repeatable)")
@click.option("--ttl", default="24h", show_default=True, help="Lifetime: 90s, 15m, 24h, 30d; 'never' for none.")
@click.option("--description")
def create(
    config: Path | None, project: str, user: str | None, roles: tuple[str, ...], ttl: str, description: str | None
) -> None:
    """Issue a token for PROJECT with ROLEs. Prints it once."""
    _check_roles(roles, load_settings(config).policy_file)
    with _service(config) as tokens:
        lifetime = None if ttl == "never" else parse_ttl(ttl)
        user_id = user or f"token-user-{uuid.uuid4().hex[:12]}"
        issued = tokens.issue(
            project_id=project, user_id=user_id, roles=list(roles), ttl=lifetime, description=description
        )
    click.echo(issued.token)
    click.echo(f"token {issued.record.id} (user {issued.record.user_id}): store it now, it is not kept", err=True)


def _check_roles(roles: tuple[str, ...], policy_file: Path | None) -> None:
    """A role no policy rule checks would make a token that can do nothing: refused, with the closest name."""
    from donjon.options import closest
    from donjon.policy.rules import known_roles

    known = known_roles(policy_file)
    for role in roles:
        if role.strip().lower() not in known:
            guess = closest(role.strip().lower(), known)
            hint = f"did you mean {guess!r}?" if guess else f"the roles are {', '.join(sorted(known))}"
            raise click.BadParameter(f"unknown role {role!r}: {hint}", param_hint="--role")


@token.command("list")
@config_option
@click.option("--project", help="Only this project's tokens.")
def list_(config: Path | None, project: str | None) -> None:
    """List tokens (ids and scopes; never the tokens themselves)."""
    with _service(config) as tokens:
        records = tokens.list_tokens(project)
    now = utcnow()
    for r in records:
        click.echo(
            f"{r.id}  project={r.project_id}  user={r.user_id}  roles={','.join(r.roles)}  "
            f"created={isoformat(r.created_at)}  expires={expires_in(r, now)}"
            + (f"  ({r.description})" if r.description else "")
        )


@token.command()
@config_option
@click.argument("token_id")
def revoke(config: Path | None, token_id: str) -> None:
    """Revoke a token by its id (effective on every node within token_cache_seconds)."""
    with _service(config) as tokens:
        if not tokens.revoke(token_id):
            raise click.ClickException(f"no active token {token_id}")
    click.echo(f"revoked {token_id}")
