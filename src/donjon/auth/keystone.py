"""Keystone mode: ``X-Auth-Token`` validated against a real Keystone (``GET /v3/auth/tokens``).

donjon authenticates to Keystone as its own service user (keystoneauth1 password plugin; the service
token is fetched once and renewed by keystoneauth1) and asks Keystone about each new user token. Results
are cached per process for ``cache_seconds`` (never past the token's expiry), keyed by an HMAC of the token
under a random per-process key: the raw token is never stored, logged or put in an error message.

``validate`` does blocking HTTP: the API calls it in a worker thread on a cache miss; ``cached`` is a
look-up in memory (donjon.cache, bounded), safe on the event loop.

Scope, as Barbican's context middleware: a project-scoped token gives the caller that project; a
system-scoped token (``system: {all: true}``) gives a caller without project whose ``system_scope`` is
``all`` (policy admits it only where a rule's scope types include ``system``); domain-scoped and unscoped
tokens are refused (401).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from donjon.auth.context import Caller
from donjon.cache import ExpiringCache
from donjon.config import KeystoneConfig
from donjon.errors import ConfigurationError, Unauthorized, Unavailable
from donjon.files import read_private
from donjon.timeutil import SYSTEM_CLOCK, Clock, parse_iso8601

log = logging.getLogger("donjon.auth.keystone")

NOT_AUTHENTICATED = "The request you have made requires authentication."
_MAX_TOKEN_CHARS = 8192  # Fernet tokens are ~200 characters; JWS ~800. Anything longer is not a token.
_MAX_CACHE_ENTRIES = 10_000


UNAVAILABLE = "The authentication service is unavailable. Please try again later."
SIGN_IN_REFUSED = "Keystone refused these credentials for this project."


@dataclass(frozen=True)
class PasswordCredentials:
    """What a person types to sign in with Keystone. The password never appears in a repr."""

    username: str
    password: str = field(repr=False)
    project: str
    user_domain: str = "Default"
    project_domain: str = "Default"


@dataclass(frozen=True)
class SignedIn:
    """A token Keystone issued for a password sign-in, and whom it names. The token is not in the repr."""

    token: str = field(repr=False)
    caller: Caller
    expires_at: str
    user_name: str
    project_name: str


class KeystoneUnavailable(Unavailable):
    """Keystone could not be asked (down, timeout, or donjon's own credentials refused): 503."""


def identity_url(auth_url: str) -> str:
    url = auth_url.rstrip("/")
    return url if url.endswith("/v3") else f"{url}/v3"


def service_password(config: KeystoneConfig) -> str:
    if config.password_file is not None:
        if not config.password_file.is_file():
            raise ConfigurationError(f"keystone password_file {config.password_file} does not exist")
        password = read_private(config.password_file).decode("utf-8").strip()
    elif config.password is not None:
        password = config.password.get_secret_value()
    else:
        password = ""
    if not password:
        raise ConfigurationError("keystone mode needs the service user's password (keystone.password_file)")
    return password


def check_config(config: KeystoneConfig) -> None:
    """Fail at start-up, not on the first request, when the keystone section is unusable."""
    if not config.auth_url.startswith(("http://", "https://")):
        raise ConfigurationError("keystone mode needs keystone.auth_url (e.g. https://keystone:5000/v3)")
    if config.cafile is not None and not config.cafile.is_file():
        raise ConfigurationError(f"keystone cafile {config.cafile} does not exist")
    service_password(config)


def caller_from_token(body: dict[str, Any]) -> Caller:
    """The caller described by Keystone's token validation response (``{"token": {...}}``)."""
    token = body.get("token")
    if not isinstance(token, dict):
        raise KeystoneUnavailable(UNAVAILABLE)
    user = token.get("user") or {}
    user_id = user.get("id") if isinstance(user, dict) else None
    roles = tuple(
        dict.fromkeys(str(r["name"]).lower() for r in token.get("roles") or () if isinstance(r, dict) and "name" in r)
    )
    project = token.get("project")
    if isinstance(project, dict) and project.get("id"):
        return Caller(project_id=str(project["id"]), user_id=user_id, roles=roles)
    system = token.get("system")
    if isinstance(system, dict) and system.get("all") is True:
        return Caller(project_id="", user_id=user_id, roles=roles, system_scope="all")
    # Domain-scoped or unscoped: Barbican's context middleware refuses a token without project scope.
    raise Unauthorized(NOT_AUTHENTICATED)


def _seconds_left(body: dict[str, Any], now: datetime) -> float | None:
    raw = body.get("token", {}).get("expires_at")
    if not isinstance(raw, str):
        return None
    try:
        return (parse_iso8601(raw) - now).total_seconds()
    except ValueError:
        return None


class KeystoneTokens:
    def __init__(self, config: KeystoneConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        check_config(config)
        self._clock = clock
        self._url = identity_url(config.auth_url)
        auth = v3.Password(
            auth_url=self._url,
            username=config.username,
            password=service_password(config),
            user_domain_name=config.user_domain_name,
            project_name=config.project_name,
            project_domain_name=config.project_domain_name,
        )
        self._session = ks_session.Session(
            auth=auth,
            timeout=config.timeout,
            verify=str(config.cafile) if config.cafile is not None else True,
            app_name="donjon",
        )
        # HMAC(token) -> caller; never past the token's own expiry
        self._cache: ExpiringCache[bytes, Caller] = ExpiringCache(
            maxsize=_MAX_CACHE_ENTRIES, ttl=config.cache_seconds, timer=clock.monotonic
        )
        self._cache_key = os.urandom(32)
        uri = config.www_authenticate_uri or config.auth_url
        self.challenge = f'Keystone uri="{uri}"'

    def __repr__(self) -> str:
        return f"KeystoneTokens(url={self._url!r})"

    def _key(self, token: str) -> bytes:
        return hmac.new(self._cache_key, token.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    @staticmethod
    def _plausible(token: str) -> bool:
        return 0 < len(token) <= _MAX_TOKEN_CHARS and token.isascii() and token.isprintable() and " " not in token

    def cached(self, token: str) -> Caller | None:
        """The caller of a token validated recently, without any I/O."""
        return self._cache.get(self._key(token))

    def validate(self, token: str) -> Caller:
        """Ask Keystone (blocking). Raises Unauthorized for a bad token, KeystoneUnavailable otherwise."""
        if not self._plausible(token):
            raise Unauthorized(NOT_AUTHENTICATED)
        key = self._key(token)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        try:
            response = self._session.get(
                f"{self._url}/auth/tokens",
                headers={"X-Subject-Token": token, "Accept": "application/json"},
                authenticated=True,
                raise_exc=False,
                log=False,  # keystoneauth1 would log the request headers at debug level
            )
        except ks_exceptions.ClientException as exc:
            # The service user's own authentication failed, or Keystone is unreachable. Type only: the
            # message of an auth failure may quote the request.
            log.error("keystone token validation failed: %s", type(exc).__name__)
            raise KeystoneUnavailable(UNAVAILABLE) from None
        if response.status_code == 404:
            raise Unauthorized(NOT_AUTHENTICATED)  # unknown, expired or revoked
        if response.status_code != 200:
            # 401/403: donjon's service user may not validate tokens (credentials or role); 5xx: Keystone.
            log.error("keystone answered %d to a token validation", response.status_code)
            raise KeystoneUnavailable(UNAVAILABLE)
        return self._accept(key, response)[0]

    def _accept(self, key: bytes, response: Any) -> tuple[Caller, dict[str, Any]]:
        """The caller a token response of Keystone's names, remembered as validated; and the body."""
        try:
            body = response.json()
        except ValueError:
            raise KeystoneUnavailable(UNAVAILABLE) from None
        caller = caller_from_token(body)
        self._remember(key, caller, body)
        return caller, body

    def _remember(self, key: bytes, caller: Caller, body: dict[str, Any]) -> None:
        self._cache.put(key, caller, _seconds_left(body, self._clock.now()))

    def sign_in(self, credentials: PasswordCredentials) -> SignedIn:
        """A project-scoped token for a user's password (blocking): the web console's Keystone sign-in.

        Keystone's ``POST /v3/auth/tokens``, password method, scoped to the named project. Any refusal by
        Keystone (wrong password, no role on the project, unknown domain, disabled user, lockout) is one
        Unauthorized, so donjon does not tell which; Keystone down is KeystoneUnavailable. The token is
        cached as validated, so the console's first request does not ask Keystone again.
        """
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": credentials.username,
                            "domain": {"name": credentials.user_domain},
                            "password": credentials.password,
                        }
                    },
                },
                "scope": {"project": {"name": credentials.project, "domain": {"name": credentials.project_domain}}},
            }
        }
        try:
            response = self._session.post(
                f"{self._url}/auth/tokens",
                json=body,
                headers={"Accept": "application/json"},
                authenticated=False,
                raise_exc=False,
                log=False,  # the request body holds the password, the response header the token
            )
        except ks_exceptions.ClientException as exc:
            log.error("keystone sign-in failed: %s", type(exc).__name__)
            raise KeystoneUnavailable(UNAVAILABLE) from None
        if 400 <= response.status_code < 500:
            raise Unauthorized(SIGN_IN_REFUSED)
        token = response.headers.get("X-Subject-Token", "")
        if response.status_code != 201 or not self._plausible(token):
            log.error("keystone answered %d to a sign-in", response.status_code)
            raise KeystoneUnavailable(UNAVAILABLE)
        caller, answer = self._accept(self._key(token), response)
        details = answer["token"]
        return SignedIn(
            token=token,
            caller=caller,
            expires_at=str(details.get("expires_at") or ""),
            user_name=str((details.get("user") or {}).get("name") or credentials.username),
            project_name=str((details.get("project") or {}).get("name") or credentials.project),
        )

    def sign_out(self, token: str) -> None:
        """Revoke a user's own token in Keystone (blocking) and forget it here: the console's sign-out.

        Keystone lets a token's subject revoke it (``DELETE /v3/auth/tokens`` with the token as both the
        credential and the subject). A token Keystone no longer knows is already what sign-out wants. Other
        server processes may keep it cached for up to ``cache_seconds``.
        """
        if not self._plausible(token):
            raise Unauthorized(NOT_AUTHENTICATED)
        try:
            response = self._session.delete(
                f"{self._url}/auth/tokens",
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
                authenticated=False,
                raise_exc=False,
                log=False,
            )
        except ks_exceptions.ClientException as exc:
            log.error("keystone sign-out failed: %s", type(exc).__name__)
            raise KeystoneUnavailable(UNAVAILABLE) from None
        self._cache.pop(self._key(token))
        if response.status_code not in (204, 401, 404):
            log.error("keystone answered %d to a sign-out", response.status_code)
            raise KeystoneUnavailable(UNAVAILABLE)
