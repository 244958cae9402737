"""A Vault / OpenBao connection shared by the transit keystore, the KV secret store and the SDK's vault backend.

One hvac client (one requests.Session) per thread: requests does not promise that a Session is thread-safe,
and a client per thread costs one keep-alive connection per server thread. The server's users take the token
from a file or an environment variable, never from the configuration (the SDK may also be handed one); after
a 403 the token file is read again once, since an agent (Vault/OpenBao Agent) may have renewed it. Every
failure is a ``VaultError`` (``Missing``, ``Refused``, ``Denied``, ``Unreachable``) with a message that names
the URL and the operation, never the token or any payload; each user turns it into its own error.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
import hvac.exceptions  # type: ignore[import-untyped]
import requests
from pydantic import AfterValidator, field_validator, model_validator

from donjon.errors import ConfigurationError
from donjon.options import PluginOptions, Seconds, Text, Verify, invalid, parse_options

log = logging.getLogger("donjon.vault")

DEFAULT_TOKEN_ENV = "DONJON_VAULT_TOKEN"

T = TypeVar("T")

_PATH = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _path(value: str) -> str:
    value = value.strip("/")
    if not _PATH.fullmatch(value):
        raise invalid(f"is not a path: {value!r}")
    return value


def _key_name(value: str) -> str:
    if not _KEY_NAME.fullmatch(value):
        raise invalid(f"is not a transit key name: {value!r}")
    return value


# A mount or a path under it, without leading or trailing slashes: plain segments, never "..".
VaultPath = Annotated[str, AfterValidator(_path)]
# The name of a transit key.
TransitKeyName = Annotated[str, AfterValidator(_key_name)]


class VaultOptions(PluginOptions):
    """How to reach Vault / OpenBao; each user's options model adds its own to these.

    The token is read from ``token_file`` or the environment variable ``token_env``; a ``token`` option is
    refused unless the model allows it (``token_allowed``: the SDK, handed a token by its caller).
    """

    token_allowed: ClassVar[bool] = False

    url: str
    token_file: Path | None = None
    token_env: Text | None = None
    ca_cert: Path | None = None  # the CA bundle that issued the server's certificate; default: the system's
    verify: Verify = True  # false only in tests; a path is taken as ca_cert
    timeout: Seconds = 10.0  # per request
    namespace: str | None = None  # Vault Enterprise / OpenBao namespace

    @model_validator(mode="before")
    @classmethod
    def _no_token_here(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data and not cls.token_allowed:
            raise invalid("a token does not belong in the configuration; use 'token_file' or 'token_env'")
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url:
            raise invalid("is required (e.g. https://vault.example:8200)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise invalid(f"is not an http(s) URL: {url!r}")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> VaultOptions:
        if self.token_file is not None and self.token_env is not None:
            raise invalid("give either 'token_file' or 'token_env', not both")
        if self.ca_cert is not None:
            if self.verify is False:
                raise invalid("'ca_cert' and 'verify = false' contradict each other")
            if not self.ca_cert.is_file():
                raise invalid(f"'ca_cert' {str(self.ca_cert)!r} is not a file")
        if isinstance(self.verify, str) and not Path(self.verify).is_file():
            raise invalid(f"'verify' {self.verify!r} is neither true, false nor a CA bundle file")
        return self


@dataclass(frozen=True)
class VaultSettings:
    """A connection's settings, the token read."""

    url: str
    token: str = field(repr=False)
    token_file: Path | None
    verify: bool | str
    timeout: float
    namespace: str | None


def vault_settings(
    options: VaultOptions,
    what: str,
    *,
    token: str | None = None,
    token_envs: Sequence[str] = (DEFAULT_TOKEN_ENV,),
) -> VaultSettings:
    """The connection settings of ``options``, with the token read from ``token`` (if the caller has one), the
    token file, the variable ``token_env``, or else the first of ``token_envs`` that is set."""
    url = options.url
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        log.warning("%s: %s is plain HTTP: the token and key material cross the network unencrypted", what, url)
    token_file = options.token_file.expanduser() if options.token_file is not None else None
    if token:
        token_file = None
    elif token_file is not None:
        token = _read_token_file(token_file, what)
    else:
        names = [options.token_env] if options.token_env else list(token_envs)
        token = next((os.environ[n].strip() for n in names if os.environ.get(n, "").strip()), "")
        if not token:
            if len(names) == 1:
                raise ConfigurationError(f"{what}: environment variable {names[0]} (the Vault token) is not set")
            raise ConfigurationError(f"{what}: no token: give 'token' or 'token_file', or set {' or '.join(names)}")
    verify = str(options.ca_cert) if options.ca_cert is not None else options.verify
    return VaultSettings(url, token, token_file, verify, options.timeout, options.namespace or None)


class VaultError(Exception):
    """A request failed. ``message`` names the URL, the operation and its subject; never the token or a payload."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Missing(VaultError):
    """No such path (``no_route``: not even the mount)."""

    def __init__(self, message: str, *, no_route: bool) -> None:
        super().__init__(message)
        self.no_route = no_route


class Refused(VaultError):
    """The server refused the request (400); ``reason`` is its own explanation."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Denied(VaultError):
    """The token was refused (401) or its policy does not allow the path (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(VaultError):
    """No answer: connection refused, timeout, TLS failure."""


def _same(failure: VaultError) -> Exception:
    return failure


class VaultConnection:
    """Requests to one server for one user (``what``, for messages); ``error`` turns a failure into the user's
    exception (by default the ``VaultError`` itself)."""

    def __init__(self, settings: VaultSettings, *, what: str, error: Callable[[VaultError], Exception] = _same) -> None:
        self.url = settings.url.rstrip("/")
        self._what = what
        self._error = error
        self._token = settings.token
        self._token_file = settings.token_file
        self._token_generation = 0
        self._verify = settings.verify
        self._timeout = settings.timeout
        self._namespace = settings.namespace
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: weakref.WeakSet[hvac.Client] = weakref.WeakSet()
        self._closed = False

    def __repr__(self) -> str:
        return f"VaultConnection(url={self.url!r})"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = list(self._clients)
            self._clients.clear()
            self._token = ""
        for client in clients:
            client.adapter.close()

    def client(self) -> hvac.Client:
        local = self._local
        client: hvac.Client | None = getattr(local, "client", None)
        with self._lock:
            if self._closed:
                raise self._error(VaultError(f"{self._what}: used after close()"))
            token, generation = self._token, self._token_generation
            if client is None:
                client = hvac.Client(
                    url=self.url, token=token, verify=self._verify, timeout=self._timeout, namespace=self._namespace
                )
                self._clients.add(client)
                local.client = client
                local.generation = generation
            elif local.generation != generation:
                client.token = token
                local.generation = generation
        return client

    def _reload_token(self, used: str) -> bool:
        """Re-read the token file after a refusal: an agent (Vault/OpenBao Agent) may have renewed it."""
        if self._token_file is None:
            return False
        try:
            fresh = _read_token_file(self._token_file, self._what)
        except ConfigurationError:
            return False
        if fresh == used:
            return False  # the file still holds the refused token
        with self._lock:
            if fresh != self._token:  # another thread may have loaded it already
                self._token = fresh
                self._token_generation += 1
        return True

    def call(
        self,
        operation: str,
        request: Callable[[hvac.Client], T],
        *,
        subject: str,
        missing_ok: bool = False,
        refused_ok: bool = False,
    ) -> T:
        """Run one request on ``subject``; a failure is raised as ``error`` made it, except ``Missing`` with
        ``missing_ok`` and ``Refused`` with ``refused_ok``, raised as they are for the caller to handle."""
        for attempt in (1, 2):
            client = self.client()
            try:
                return request(client)
            except hvac.exceptions.Forbidden:
                if attempt == 1 and self._reload_token(client.token):
                    continue
                failure: VaultError = Denied(
                    f"{self._what}: permission denied by {self.url} to {operation} on {subject}: the token is "
                    "invalid or expired, or its policy does not allow this path",
                    403,
                )
            except hvac.exceptions.InvalidPath as exc:
                no_route = any("no handler for route" in e for e in exc.errors or ())
                missing = Missing(
                    f"{self._what}: {self.url} has no {subject} to {operation} (mount or path missing)",
                    no_route=no_route,
                )
                if missing_ok:
                    raise missing from None
                failure = missing
            except hvac.exceptions.InvalidRequest as exc:
                reason = self._reason(exc)
                refused = Refused(f"{self._what}: {self.url} refused to {operation}: {reason}", reason)
                if refused_ok:
                    raise refused from None
                failure = refused
            except hvac.exceptions.Unauthorized as exc:
                failure = Denied(
                    f"{self._what}: {self.url} failed to {operation} (Unauthorized): {self._reason(exc)}", 401
                )
            except hvac.exceptions.VaultError as exc:
                failure = VaultError(
                    f"{self._what}: {self.url} failed to {operation} ({type(exc).__name__}): {self._reason(exc)}"
                )
            except requests.exceptions.RequestException as exc:
                # The type only: requests' messages are long and repeat the URL, never the token, but be terse.
                failure = Unreachable(f"{self._what}: cannot reach {self.url} to {operation} ({type(exc).__name__})")
            raise self._error(failure) from None
        raise AssertionError("unreachable")

    def _reason(self, exc: hvac.exceptions.VaultError) -> str:
        reason = "; ".join(str(e) for e in exc.errors or ()) or "no detail"
        reason = " ".join(reason.split())[:200]
        # Defence in depth: a server is not expected to echo the token, but make sure no message can.
        token = self._token
        return reason.replace(token, "<token>") if token else reason


def _read_token_file(path: Path, what: str) -> str:
    try:
        mode = path.stat().st_mode
        # Others may not read it; the group may, as an agent's sink file is often 0640 for a service group.
        if mode & stat.S_IRWXO:
            raise ConfigurationError(
                f"{what}: token file {path} is readable by others (mode {oct(mode & 0o777)}); chmod 600"
            )
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigurationError(f"{what}: cannot read token file {path} ({exc.strerror})") from None
    if not token:
        raise ConfigurationError(f"{what}: token file {path} is empty")
    return token


Opts = TypeVar("Opts", bound=VaultOptions)


@contextmanager
def connected(
    model: type[Opts], options: Mapping[str, Any], what: str, *, error: Callable[[VaultError], Exception]
) -> Iterator[tuple[Opts, VaultConnection]]:
    """``options`` as ``model`` (``ConfigurationError`` listing every mistake) and a connection to the server
    they name, for a server-side user whose token comes from the token file or the environment; the
    connection is closed if the block fails (its user's start-up checks), kept open if it succeeds."""
    opts = parse_options(model, options, what)
    connection = VaultConnection(vault_settings(opts, what), what=what, error=error)
    try:
        yield opts, connection
    except BaseException:
        connection.close()
        raise
