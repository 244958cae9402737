"""``donjon secret wrap|unwrap|rotate|lifecycle|metadata``: donjon's lifecycle extensions from the shell, and
what the secret commands share with them: a secret named by its unique name, relative times (``+1h``).

A Barbican answers the extensions 404; the metadata commands are Barbican's own API.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime, timedelta

import click

from donjon.cli.client_common import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    CommandError,
    Connection,
    connection_options,
    emit,
    read_payload,
    show_payload,
)
from donjon.client._http import BarbicanAPI, ref_id

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DURATION = re.compile(r"^\+?(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``30d`` (a ``+`` in front is allowed)."""
    m = _DURATION.match(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise click.BadParameter(f"{text!r} is not a duration: a number and s, m, h or d (e.g. 1h)")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def expiration(text: str | None) -> str | None:
    """An ``--expiration``: ISO 8601 as is, or ``+1h``/``+30d`` from now (sent as UTC ISO 8601)."""
    if text is None or not text.strip().startswith("+"):
        return text
    return (datetime.now(UTC) + duration(text)).replace(microsecond=0).isoformat()


def resolve_secret(api: BarbicanAPI, ident: str) -> str:
    """A secret's id or ref as given, or the one secret of the project with that exact name."""
    if "/" in ident or _UUID.match(ident):
        return ident
    # The server's name filter is SQL LIKE (% and _ are wildcards): the exact name is checked here.
    found = [s for s in api.list_secrets(name=ident) if s.get("name") == ident]
    if not found:
        raise CommandError(f"no secret with id or name {ident!r}", EXIT_NOT_FOUND)
    if len(found) > 1:
        ids = ", ".join(ref_id(s["secret_ref"]) for s in found)
        raise CommandError(f"{len(found)} secrets are named {ident!r} ({ids}): give the id", EXIT_CONFLICT)
    return str(found[0]["secret_ref"])


@click.command("wrap")
@connection_options
@click.argument("secret_id")
@click.option("--ttl", help="How long the token is valid: 90s, 15m, 1h (default: the server's, 5m).")
def secret_wrap(conn: Connection, secret_id: str, ttl: str | None) -> None:
    """A single-use token that fetches SECRET's payload once (hand it to whoever needs the secret)."""
    api = conn.api()
    seconds = int(duration(ttl).total_seconds()) if ttl is not None else None
    wrapped = api.wrap_secret(resolve_secret(api, secret_id), seconds)
    emit({"wrap_token": wrapped["wrap_token"], "expires": wrapped["expires"]}, conn.output)


@click.command("unwrap")
@connection_options
@click.argument("wrap_token", metavar="TOKEN", required=False)
@click.option("-F", "--file", "path", help="Write the payload to this new 0600 file instead of stdout.")
@click.option("--accept", default="application/octet-stream", show_default=True, help="Content type to ask for.")
def secret_unwrap(conn: Connection, wrap_token: str | None, path: str | None, accept: str) -> None:
    """The payload for a wrap token (TOKEN, or $DONJON_WRAP_TOKEN, or stdin). Needs no other credential; the
    token works once."""
    token = wrap_token or os.environ.get("DONJON_WRAP_TOKEN")
    if not token and not sys.stdin.isatty():
        token = sys.stdin.read().strip()
    if not token:
        raise click.UsageError("give the wrap token: TOKEN, $DONJON_WRAP_TOKEN or stdin")
    got = conn.api().unwrap(token, accept)
    show_payload(got.data, got.content_type, path, conn.output)


@click.command("rotate")
@connection_options
@click.argument("secret_id")
@click.option("-p", "--payload", "payload_text", help="The new payload (shows in ps: prefer --file or stdin).")
@click.option("-F", "--file", "path", help="Read the new payload from this file ('-': stdin).")
@click.option(
    "--content-type",
    type=click.Choice(["application/octet-stream", "text/plain"]),
    help="text/plain with --payload, else application/octet-stream.",
)
def secret_rotate(
    conn: Connection, secret_id: str, payload_text: str | None, path: str | None, content_type: str | None
) -> None:
    """Store a new payload as SECRET's current version; the previous one stays readable for the grace period
    (secret get --payload --version N)."""
    if payload_text is not None and path is not None:
        raise click.UsageError("give one of --payload and --file")
    kind = content_type or ("text/plain" if payload_text else "application/octet-stream")
    data = read_payload(path, given=payload_text or None, content_type=kind)
    api = conn.api()
    ref = resolve_secret(api, secret_id)
    version = api.create_version(ref, data, kind)
    emit({"id": ref_id(ref), "version": version}, conn.output)


@click.command("lifecycle")
@connection_options
@click.argument("secret_id")
def secret_lifecycle(conn: Connection, secret_id: str) -> None:
    """SECRET's reads left (--max-reads) and its readable versions."""
    api = conn.api()
    emit(api.lifecycle(resolve_secret(api, secret_id)), conn.output)


@click.command("metadata")
@connection_options
@click.argument("secret_id")
@click.argument("pairs", nargs=-1)
@click.option("--replace", is_flag=True, help="With KEY=VALUE pairs: replace all metadata instead of merging.")
@click.option("--remove", "removed", multiple=True, help="Remove this key (repeatable).")
def secret_metadata(
    conn: Connection, secret_id: str, pairs: tuple[str, ...], replace: bool, removed: tuple[str, ...]
) -> None:
    """Show SECRET's user metadata, or set KEY=VALUE pairs (merged unless --replace) and remove keys."""
    api = conn.api()
    ref = resolve_secret(api, secret_id)
    if pairs or removed:
        given: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="PAIRS")
            given[key] = value
        metadata = {} if replace else api.secret_metadata(ref)
        metadata.update(given)
        for key in removed:
            metadata.pop(key.lower(), None)
        api.set_secret_metadata(ref, metadata)
    emit(api.secret_metadata(ref), conn.output)


COMMANDS = (secret_wrap, secret_unwrap, secret_rotate, secret_lifecycle, secret_metadata)
