"""What every ``donjon`` command shares: the ``--config`` option and loading the settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from donjon.config import CONFIG_ENV, Settings

F = TypeVar("F", bound=Callable[..., Any])

config_option: Callable[[F], F] = click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), help=f"TOML configuration file (or ${CONFIG_ENV})."
)


def load_settings(config: Path | None) -> Settings:
    if config is not None:
        os.environ[CONFIG_ENV] = str(config)
    try:
        return Settings()
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
