"""``donjon``: run the server, manage its storage, and use the API from the shell.

Subcommands are imported when they are called: the client commands (``secret``, ``order``, …) need only the SDK
and httpx, and start several times faster without the server's SQLAlchemy, Alembic and oslo.policy.
"""

from __future__ import annotations

import importlib
import os

import click

import donjon

# name -> "module:attribute" of the click command.
_COMMANDS = {
    "server": "donjon.cli.server:server",
    "manage": "donjon.cli.manage:manage",
    "token": "donjon.cli.tokens:token",
    "audit": "donjon.cli.audit:audit",
    "secret": "donjon.cli.client_commands:secret",
    "order": "donjon.cli.client_commands:order",
    "container": "donjon.cli.client_commands:container",
    "acl": "donjon.cli.client_commands:acl",
    "consumer": "donjon.cli.client_commands:consumer",
    "import": "donjon.cli.client_import:import_",
    "completion": "donjon.cli.client_commands:completion",
}


class LazyGroup(click.Group):
    """A group whose subcommands are looked up in ``_COMMANDS`` and imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = _COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{_COMMANDS[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(donjon.__version__, prog_name="donjon")
def cli() -> None:
    """donjon: a secrets service that speaks OpenStack Barbican's v1 API."""
    # Whatever donjon creates (database, logs, payloads written to files) is for its owner alone, even in a
    # data dir or output dir that others may read.
    os.umask(os.umask(0o077) | 0o077)
