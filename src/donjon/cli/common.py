"""What every ``donjon`` command that touches server state shares: ``--config`` and ``--data-dir``, flags that
may not contradict the environment or the config file, and loading the settings.

``donjon server``, ``donjon token …``, ``donjon audit verify`` and ``donjon manage …`` all take the same two
options, so a command run beside a server reads the database and key files that server uses. A flag that
says something else than ``DONJON_*`` or the config file is an error rather than a silent override: the
mistake it catches (a token written to one data dir, the server reading another, and a bare 401) is worse
than the extra word it costs.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from donjon.config import CONFIG_ENV, Settings
from donjon.config_errors import describe_settings_error

F = TypeVar("F", bound=Callable[..., Any])

# (the flag as the user wrote it, the setting it sets, its value or None when not given)
Flag = tuple[str, str, object | None]


def config_option(fn: F) -> F:
    """``--config FILE`` and ``--data-dir DIR``, passed on as ``config``; the data dir goes to the settings."""

    @click.option(
        "--config", type=click.Path(dir_okay=False, path_type=Path), help=f"TOML configuration file (or ${CONFIG_ENV})."
    )
    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where SQLite and the key files live (or $DONJON_DATA_DIR; default ~/.local/share/donjon).",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, config: Path | None, data_dir: Path | None, **kwargs: Any) -> Any:
        apply_flags(config, [("--data-dir", "data_dir", data_dir)])
        return fn(*args, config=config, **kwargs)

    return wrapper  # type: ignore[return-value]


def apply_flags(config: Path | None, flags: Iterable[Flag]) -> None:
    """Set each given flag as its ``DONJON_*`` variable (every worker process then builds the same settings);
    a ``click.ClickException`` if one contradicts the environment or the config file."""
    named = os.environ.get(CONFIG_ENV)
    if config is not None and named and not _same_path(config, named):
        raise click.ClickException(f"--config {config} conflicts with {CONFIG_ENV}={named}: give one of them")
    file = config if config is not None else (Path(named) if named else None)
    in_file = _top_level(file)
    for flag, setting, value in flags:
        if value is None:
            continue
        text, variable = str(value), f"DONJON_{setting.upper()}"
        # A switch (--dev) is shown with the setting it means; an option with its value.
        given = f"{flag} ({setting} = {text})" if flag.lstrip("-") == text else f"{flag} {text}"
        current = os.environ.get(variable)
        if current is not None and not _same(setting, current, text):
            raise click.ClickException(f"{given} conflicts with {variable}={current}: unset one of them")
        if setting in in_file and not _same(setting, str(in_file[setting]), text):
            raise click.ClickException(
                f"{given} conflicts with {setting} = {in_file[setting]!r} in {file}: remove one of them"
            )
        os.environ[variable] = text


def load_settings(config: Path | None) -> Settings:
    if config is not None:
        os.environ[CONFIG_ENV] = str(config)
    try:
        return Settings()
    except ValidationError as exc:
        raise click.ClickException(describe_settings_error(exc, os.environ.get(CONFIG_ENV))) from None
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(
            f"invalid configuration: {os.environ.get(CONFIG_ENV)} is not valid TOML: {exc}"
        ) from None
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None


def _top_level(file: Path | None) -> dict[str, Any]:
    # Unreadable or invalid files are reported by load_settings, with the rest of the configuration.
    if file is None:
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _same(setting: str, a: str, b: str) -> bool:
    if setting.endswith(("_dir", "_file")):
        return _same_path(a, b)
    return a.strip().lower() == b.strip().lower()


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
