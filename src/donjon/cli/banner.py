"""What ``donjon server`` prints after its first line: what to do next, as ``vault server -dev`` does.

Where the ``donjon`` command is (``./scripts/serve`` installs it into a virtualenv that is not on PATH),
the ``export`` lines that point the client commands at this server, a first command to run, and where the
data lives. Nothing secret is printed: no token (``donjon token bootstrap`` prints the first one itself),
and a ``database_url`` is named, never shown (it may hold a password).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from donjon.config import CONFIG_ENV, Settings, default_data_dir

# The variables the server's flags set; any other DONJON_* variable must also be set where `donjon token`
# or `donjon manage` runs, or they would read other settings than this server's.
_FROM_FLAGS = {"DONJON_HOST", "DONJON_PORT", "DONJON_WORKERS", "DONJON_DATA_DIR", "DONJON_AUTH", CONFIG_ENV}


def next_steps(settings: Settings, url: str) -> str:
    """The lines printed under the "serving on" line."""
    exe = Path(sys.executable).with_name("donjon")
    found = shutil.which("donjon")
    on_path = found is not None and Path(found).resolve() == exe.resolve()
    state = _state_options(settings)
    lines = [""]
    if settings.auth == "dev":
        lines.append(
            "Dev mode: no login, the X-Project-Id header names the caller's project; loopback only. "
            "Use DONJON_AUTH=token for anything shared."
        )
    elif settings.auth == "token":
        lines.append("Token mode: clients send a donjon token (X-Auth-Token); the lines below issue the first one.")
    else:
        lines.append("Keystone mode: clients send Keystone tokens (OS_AUTH_URL, OS_USERNAME, ... for the donjon CLI).")
    lines += ["", f"The donjon command is {exe}. In another shell:", ""]
    if not on_path:
        lines.append(f'    export PATH={shlex.quote(str(exe.parent))}:"$PATH"')
    lines.append(f"    export DONJON_URL={shlex.quote(url)}")
    if settings.auth == "dev":
        lines.append("    export DONJON_PROJECT_ID=demo")
    elif settings.auth == "token":
        lines.append(f'    export DONJON_TOKEN="$(donjon token bootstrap{state})"   # once; it is shown once')
    lines += [
        "",
        "    printf 'hello, donjon' | donjon secret store --name first-secret --content-type text/plain",
        "    donjon secret list",
        '    donjon --help                  # and: eval "$(donjon completion bash)"',
        "",
    ]
    lines.append(f"Data dir (database, root key, token and audit keys, audit log): {settings.data_dir}")
    if settings.database_url:
        lines.append("Database: the configured database_url")
    if settings.keystore.type == "file":
        lines.append(f"Root key: {settings.keystore_options()['path']}")
    others = sorted(k for k in os.environ if k.startswith("DONJON_") and k not in _FROM_FLAGS)
    if others:
        lines.append(f"Operator commands (donjon token, manage, audit) need the same {', '.join(others)}.")
    if settings.ui.enabled:
        lines.append(f"Web console: {url}/ui")
    lines += [f"Health: {url}/healthcheck. Stop with Ctrl-C.", ""]
    return "\n".join(lines)


def _state_options(settings: Settings) -> str:
    """The ``--config``/``--data-dir`` options that make an operator command use this server's files."""
    out = ""
    config = os.environ.get(CONFIG_ENV)
    if config:
        out += f" --config {shlex.quote(str(Path(config).resolve()))}"
    if settings.data_dir.resolve() != default_data_dir().resolve():
        out += f" --data-dir {shlex.quote(str(settings.data_dir.resolve()))}"
    return out
