"""What the client commands share: where the server is and who we are, output formats, payload I/O, exit codes.

Configuration, first found wins: flags, environment, the config file (``--client-config``,
``$DONJON_CLIENT_CONFIG``, else ``~/.config/donjon/client.toml``; a ``[profile]`` table chosen by ``--profile``
or ``$DONJON_PROFILE``, default ``default``).

================  =====================  ===============================================================
flag              environment            meaning
================  =====================  ===============================================================
``--url``         ``DONJON_URL``         the server (a donjon or Barbican endpoint root)
``--token``       ``DONJON_TOKEN``       a donjon token (or any ``X-Auth-Token``)
``--project-id``  ``DONJON_PROJECT_ID``  dev mode / Barbican unauthenticated: the project to act in
(none)            ``OS_AUTH_URL`` ...    Keystone: ``OS_USERNAME``, ``OS_PASSWORD``, ``OS_PROJECT_NAME``
                                         (or ``OS_PROJECT_ID``), ``OS_USER_DOMAIN_NAME``,
                                         ``OS_PROJECT_DOMAIN_NAME``; or ``OS_TOKEN``; or
                                         ``OS_APPLICATION_CREDENTIAL_ID``/``_SECRET``. Without a URL,
                                         the catalog's key-manager endpoint is used.
================  =====================  ===============================================================

Exit codes: 0 success, 1 unexpected error, 2 bad usage (click), 3 configuration, 4 not found,
5 not authenticated or not allowed, 6 request refused (400/406/413/415), 7 conflict (state, consumers),
8 server failed or unreachable (5xx, network, failed order), 9 an import finished with failures.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from donjon.client import _errors as errors
from donjon.client._errors import ClientError, ConfigError
from donjon.client._http import BarbicanAPI, DevAuth, KeystoneSessionAuth, TokenAuth

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_INVALID, EXIT_CONFLICT, EXIT_BACKEND, EXIT_PARTIAL = 3, 4, 5, 6, 7, 8, 9
_EXIT_CODES: tuple[tuple[type[ClientError], int], ...] = (
    (errors.ConfigError, EXIT_CONFIG),
    (errors.NotFound, EXIT_NOT_FOUND),
    (errors.Unauthorized, EXIT_AUTH),
    (errors.Forbidden, EXIT_AUTH),
    (errors.InvalidRequest, EXIT_INVALID),
    (errors.Conflict, EXIT_CONFLICT),
    (errors.BackendError, EXIT_BACKEND),
)
FORMATS = ("table", "json", "yaml", "value")


class CommandError(click.ClickException):
    """A failure shown as ``error: ...`` on stderr, with the exit code for its kind."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it per class; ours is per kind

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def exit_code_for(exc: ClientError) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


# The SDK's messages start with the HTTP call ("GET secrets/<id>: 404 ..."); a command names itself instead.
_HTTP_METHOD = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD) (?=\S+: )")


def handle_errors(fn: F) -> F:
    """The SDK's errors as ``CommandError`` with their exit code, named by the command that failed: a failed
    ``secret delete`` says ``secret delete: secrets/<id>: 404 ...`` even when the call that failed was the
    GET before the DELETE."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            ctx = click.get_current_context(silent=True)
            operation = " ".join(ctx.command_path.split()[1:]) if ctx is not None else ""
            message = _HTTP_METHOD.sub("", exc.message)
            raise CommandError(f"{operation}: {message}" if operation else message, exit_code_for(exc)) from None

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ connection


@dataclass
class Connection:
    """Flags of a client command, resolved lazily into a ``BarbicanAPI``."""

    url: str | None
    token: str | None
    project_id: str | None
    config_file: Path | None
    profile: str | None
    insecure: bool
    output: str

    def profile_values(self) -> dict[str, Any]:
        path = self.config_file or _env_path("DONJON_CLIENT_CONFIG")
        explicit = path is not None
        path = path or Path.home() / ".config" / "donjon" / "client.toml"
        if not path.is_file():
            if explicit:
                raise ConfigError(f"client config file {path} does not exist")
            return {}
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read client config file {path}: {exc}") from exc
        name = self.profile or os.environ.get("DONJON_PROFILE") or "default"
        section = data.get(name)
        if section is None:
            if self.profile or os.environ.get("DONJON_PROFILE"):
                raise ConfigError(f"no profile [{name}] in {path}")
            return {}
        if not isinstance(section, dict):
            raise ConfigError(f"[{name}] in {path} is not a table")
        return section

    def api(self) -> BarbicanAPI:
        profile = self.profile_values()
        url = self.url or os.environ.get("DONJON_URL") or profile.get("url")
        token = self.token or os.environ.get("DONJON_TOKEN") or profile.get("token")
        project_id = self.project_id or os.environ.get("DONJON_PROJECT_ID") or profile.get("project_id")
        verify: bool | str = not self.insecure
        if isinstance(profile.get("cacert"), str):
            verify = profile["cacert"]
        auth: Any = None
        if token:
            auth = TokenAuth(str(token))
        elif project_id:
            auth = DevAuth(str(project_id), os.environ.get("DONJON_USER_ID") or profile.get("user_id"))
        elif os.environ.get("OS_AUTH_URL") or profile.get("os_auth_url"):
            session = keystone_session(profile, verify)
            auth = KeystoneSessionAuth(session)
            if not url:
                try:
                    url = session.get_endpoint(
                        service_type="key-manager",
                        interface=os.environ.get("OS_INTERFACE", "public"),
                        region_name=os.environ.get("OS_REGION_NAME"),
                    )
                except Exception as exc:
                    raise ConfigError(f"no key-manager endpoint in the Keystone catalog: {exc}") from exc
        if not url:
            raise ConfigError("no server: give --url, set DONJON_URL, or put url in the client config file")
        return BarbicanAPI(str(url), auth=auth, verify=verify)


def keystone_session(profile: Mapping[str, Any], verify: bool | str) -> Any:
    """A keystoneauth1 session from the usual ``OS_*`` variables (or ``os_*`` keys of the profile)."""
    try:
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
    except ImportError as exc:
        raise ConfigError("Keystone auth needs keystoneauth1: pip install 'donjon[keystone]'") from exc

    def get(name: str) -> Any:
        value = os.environ.get(name.upper()) or profile.get(name.lower())
        return str(value) if value else None

    auth_url = get("OS_AUTH_URL")
    scope: dict[str, Any] = {
        "project_id": get("OS_PROJECT_ID"),
        "project_name": get("OS_PROJECT_NAME"),
        "project_domain_name": get("OS_PROJECT_DOMAIN_NAME") or (None if get("OS_PROJECT_DOMAIN_ID") else "Default"),
        "project_domain_id": get("OS_PROJECT_DOMAIN_ID"),
    }
    if get("OS_APPLICATION_CREDENTIAL_ID"):
        plugin: Any = v3.ApplicationCredential(
            auth_url=auth_url,
            application_credential_id=get("OS_APPLICATION_CREDENTIAL_ID"),
            application_credential_secret=get("OS_APPLICATION_CREDENTIAL_SECRET"),
        )
    elif get("OS_TOKEN"):
        plugin = v3.Token(auth_url=auth_url, token=get("OS_TOKEN"), **scope)
    else:
        if not get("OS_USERNAME") or not get("OS_PASSWORD"):
            raise ConfigError("Keystone auth needs OS_USERNAME and OS_PASSWORD (or OS_TOKEN)")
        plugin = v3.Password(
            auth_url=auth_url,
            username=get("OS_USERNAME"),
            password=get("OS_PASSWORD"),
            user_domain_name=get("OS_USER_DOMAIN_NAME") or (None if get("OS_USER_DOMAIN_ID") else "Default"),
            user_domain_id=get("OS_USER_DOMAIN_ID"),
            **scope,
        )
    return session.Session(auth=plugin, verify=verify)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def connection_options(fn: F) -> F:
    """The options every client command takes, gathered into a ``Connection`` passed as ``conn``."""

    @click.option("--url", help="Server URL (or $DONJON_URL).")
    @click.option("--token", help="donjon token (or $DONJON_TOKEN; prefer the variable: flags show in ps).")
    @click.option("--project-id", help="Dev mode / unauthenticated Barbican: the project (or $DONJON_PROJECT_ID).")
    @click.option(
        "--client-config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Client config file (or $DONJON_CLIENT_CONFIG; default ~/.config/donjon/client.toml).",
    )
    @click.option("--profile", help="Profile (table) in the client config file (or $DONJON_PROFILE).")
    @click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
    @click.option(
        "-f", "--format", "output", type=click.Choice(FORMATS), default="table", show_default=True, help="Output."
    )
    @functools.wraps(fn)
    def wrapper(
        url: str | None,
        token: str | None,
        project_id: str | None,
        client_config: Path | None,
        profile: str | None,
        insecure: bool,
        output: str,
        **kwargs: Any,
    ) -> Any:
        conn = Connection(url, token, project_id, client_config, profile, insecure, output)
        return fn(conn=conn, **kwargs)

    return handle_errors(wrapper)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ output


def emit(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any], output: str, columns: Sequence[str] = ()) -> None:
    """Print one record (a mapping) or a list of records in the chosen format."""
    single = isinstance(rows, Mapping)
    records: list[Mapping[str, Any]] = [rows] if isinstance(rows, Mapping) else list(rows)
    cols = list(columns) or _columns(records)
    picked = [{c: r.get(c) for c in cols} for r in records]
    if output == "json":
        click.echo(json.dumps(picked[0] if single else picked, indent=2, sort_keys=False, default=str))
    elif output == "yaml":
        click.echo(_yaml(picked[0] if single else picked), nl=False)
    elif output == "value":
        for r in picked:
            click.echo(" ".join(_cell(r[c]) for c in cols))
    elif single:
        _table([{"Field": c, "Value": picked[0][c]} for c in cols], ["Field", "Value"])
    else:
        _table(picked, cols)


def _columns(records: Iterable[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in records:
        cols.extend(k for k in r if k not in cols)
    return cols


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> None:
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    click.echo(line)
    click.echo("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    click.echo(line)
    for row in cells:
        click.echo("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
    click.echo(line)


def _yaml(value: Any, indent: int = 0) -> str:
    """YAML for JSON-like data (block style; strings as JSON strings, which YAML reads back)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = ""
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                out += f"{pad}{k}:\n" + _yaml(v, indent + 2)
            else:
                out += f"{pad}{k}: {_scalar(v)}\n"
        return out
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = ""
        for item in value:
            text = _yaml(item, indent + 2)
            nested = isinstance(item, dict | list) and item
            out += f"{pad}- " + text.lstrip(" ") if nested else f"{pad}- {_scalar(item)}\n"
        return out
    return pad + _scalar(value) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return json.dumps(str(value))


# ------------------------------------------------------------------------------------------ payloads


def read_payload(
    path: str | None, prompt: str = "Payload", *, given: str | None = None, content_type: str | None = None
) -> bytes:
    """The payload: ``given`` (``--payload TEXT``) as UTF-8, else from a file, ``-`` (stdin), or - on a terminal -
    a hidden prompt (never echoed). Refused when empty, or when it is not UTF-8 and ``content_type`` is
    ``text/plain`` (the server would serve it as text)."""
    if given is not None:
        data = given.encode("utf-8")
    elif path == "-" or (path is None and not sys.stdin.isatty()):
        data = sys.stdin.buffer.read()
    elif path is None:
        data = click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True).encode()
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", EXIT_CONFIG) from None
    if not data:
        raise CommandError("the payload is empty", EXIT_INVALID)
    if content_type == "text/plain":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("--content-type text/plain needs UTF-8 text", EXIT_INVALID) from None
    return data


def is_text(data: bytes) -> bool:
    """UTF-8 without control characters other than tab and line ends: safe to show on a terminal."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def emit_payload(data: bytes, content_type: str, output: str) -> None:
    """A payload in a structured format (``-f json|yaml|value``): text as is, anything else in base64."""
    if output == "value":
        write_payload(data, None)
        return
    record: dict[str, Any] = {"content_type": content_type}
    if is_text(data):
        record["payload"] = data.decode("utf-8")
    else:
        record.update(payload=base64.b64encode(data).decode("ascii"), payload_content_encoding="base64")
    emit(record, output)


def show_payload(data: bytes, content_type: str, path: str | None, output: str) -> None:
    """A payload read back: to ``path`` (or raw to stdout), or as a ``-f json|yaml`` record without one."""
    if path is None and output in ("json", "yaml"):
        emit_payload(data, content_type, output)  # text as is, binary in base64
    else:
        write_payload(data, path)


def write_payload(data: bytes, path: str | None) -> None:
    """The payload to a new 0600 file, or raw to stdout (``-`` or no path); never binary to a terminal."""
    if path is None or path == "-":
        if path is None and sys.stdout.isatty() and not is_text(data):
            raise CommandError(
                f"the payload is binary ({len(data)} bytes) and stdout is a terminal: write it to a file "
                "(--file PATH), pipe it (| xxd), or show it in base64 (-f json)",
                EXIT_INVALID,
            )
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}", EXIT_CONFIG) from None
