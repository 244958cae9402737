"""A Vault / OpenBao connection shared by the transit keystore and the KV secret store.

One hvac client (one requests.Session) per thread: requests does not promise that a Session is thread-safe,
and a client per thread costs one keep-alive connection per server thread. The token comes from a file or an
environment variable, never from the configuration; after a 403 the token file is read again once, since an
agent (Vault/OpenBao Agent) may have renewed it. Every failure becomes the caller's error type with a message
that names the URL and the operation, never the token or any payload.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import hvac  # type: ignore[import-untyped]  # hvac ships no type information
import hvac.exceptions  # type: ignore[import-untyped]
import requests

from donjon.errors import ConfigurationError, DonjonError

log = logging.getLogger("donjon.vault")

DEFAULT_TOKEN_ENV = "DONJON_VAULT_TOKEN"
CONNECTION_OPTIONS = {"url", "token_file", "token_env", "ca_cert", "verify", "timeout", "namespace"}

T = TypeVar("T")


@dataclass(frozen=True)
class VaultSettings:
    url: str
    token: str = field(repr=False)
    token_file: Path | None
    verify: bool | str
    timeout: float
    namespace: str | None


def parse_settings(options: Mapping[str, Any], what: str) -> VaultSettings:
    """The connection options every Vault user shares; ConfigurationError names ``what`` is configured."""
    if "token" in options:
        raise ConfigurationError(
            f"{what}: a token does not belong in the configuration; use 'token_file' or 'token_env'"
        )
    url = _url(options.get("url"), what)
    token, token_file = _token(options, what)
    verify: bool | str = boolean(options, "verify", True, what)
    if "ca_cert" in options:
        if not verify:
            raise ConfigurationError(f"{what}: 'ca_cert' and 'verify = false' contradict each other")
        ca_cert = Path(str(options["ca_cert"]))
        if not ca_cert.is_file():
            raise ConfigurationError(f"{what}: 'ca_cert' {str(ca_cert)!r} is not a file")
        verify = str(ca_cert)
    timeout = positive_float(options, "timeout", 10.0, what)
    namespace = options.get("namespace")
    return VaultSettings(url, token, token_file, verify, timeout, str(namespace) if namespace else None)


class Missing(Exception):
    def __init__(self, *, no_route: bool) -> None:
        super().__init__("not found")
        self.no_route = no_route


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VaultConnection:
    def __init__(self, settings: VaultSettings, *, what: str, error: type[DonjonError]) -> None:
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
                raise self._error(f"{self._what}: used after close()")
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
        """Run one request on ``subject``, turning every failure into the error type (or Missing/Refused if asked)."""
        for attempt in (1, 2):
            client = self.client()
            try:
                return request(client)
            except hvac.exceptions.Forbidden:
                if attempt == 1 and self._reload_token(client.token):
                    continue
                raise self._error(
                    f"{self._what}: permission denied by {self.url} to {operation} on {subject}: the token is "
                    "invalid or expired, or its policy does not allow this path"
                ) from None
            except hvac.exceptions.InvalidPath as exc:
                if missing_ok:
                    raise Missing(no_route=any("no handler for route" in e for e in exc.errors or ())) from None
                raise self._error(
                    f"{self._what}: {self.url} has no {subject} to {operation} (mount or path missing)"
                ) from None
            except hvac.exceptions.InvalidRequest as exc:
                reason = self._reason(exc)
                if refused_ok:
                    raise Refused(reason) from None
                raise self._error(f"{self._what}: {self.url} refused to {operation}: {reason}") from None
            except hvac.exceptions.VaultError as exc:
                raise self._error(
                    f"{self._what}: {self.url} failed to {operation} ({type(exc).__name__}): {self._reason(exc)}"
                ) from None
            except requests.exceptions.RequestException as exc:
                # The type only: requests' messages are long and repeat the URL, never the token, but be terse.
                raise self._error(
                    f"{self._what}: cannot reach {self.url} to {operation} ({type(exc).__name__})"
                ) from None
        raise AssertionError("unreachable")

    def _reason(self, exc: hvac.exceptions.VaultError) -> str:
        reason = "; ".join(str(e) for e in exc.errors or ()) or "no detail"
        reason = " ".join(reason.split())[:200]
        # Defence in depth: a server is not expected to echo the token, but make sure no message can.
        token = self._token
        return reason.replace(token, "<token>") if token else reason


def _url(value: Any, what: str) -> str:
    if not value:
        raise ConfigurationError(f"{what}: 'url' is required (e.g. https://vault.example:8200)")
    url = str(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what}: 'url' {url!r} is not an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        log.warning("%s: %s is plain HTTP: the token and key material cross the network unencrypted", what, url)
    return url


def _token(options: Mapping[str, Any], what: str) -> tuple[str, Path | None]:
    if "token_file" in options and "token_env" in options:
        raise ConfigurationError(f"{what}: give either 'token_file' or 'token_env', not both")
    if "token_file" in options:
        path = Path(str(options["token_file"]))
        return _read_token_file(path, what), path
    name = str(options.get("token_env", DEFAULT_TOKEN_ENV))
    token = os.environ.get(name, "").strip()
    if not token:
        raise ConfigurationError(f"{what}: environment variable {name} (the Vault token) is not set")
    return token, None


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


def boolean(options: Mapping[str, Any], name: str, default: bool, what: str) -> bool:
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    # Environment variables (DONJON_KEYSTORE__OPTIONS__CREATE=false) arrive as strings.
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{what}: {name!r} must be true or false, not {value!r}")


def positive_float(options: Mapping[str, Any], name: str, default: float, what: str) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number > 0:
        raise ConfigurationError(f"{what}: {name!r} must be a positive number of seconds, not {value!r}")
    return number
