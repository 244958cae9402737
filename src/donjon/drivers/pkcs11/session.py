"""Logging in to a token once per process, and lending its sessions to one thread at a time.

A token's login state is per process, not per session, so every user of one token shares one logged-in
``SharedToken`` (a second user's PIN is still checked against the first's). Its sessions are pooled: a session
carries one operation at a time (EncryptInit then Encrypt), so each request thread borrows its own.
"""

from __future__ import annotations

import ctypes
import hmac
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pkcs11 import exceptions as p11e
from pkcs11.types import SecretKey, Session, Token

from donjon.drivers.pkcs11.errors import TokenUnavailable
from donjon.drivers.pkcs11.module import Module, acquire_module, last_user_gone, registry_lock, release_module
from donjon.drivers.pkcs11.pins import PinSource, pin_digest
from donjon.errors import ConfigurationError


@dataclass(eq=False)
class PooledSession:
    session: Session
    keys: dict[str, SecretKey] = field(default_factory=dict)  # keys a user found in this session, by its own id


class SharedToken:
    """One token, logged in once for the process, with a pool of sessions lent to one thread at a time."""

    def __init__(self, module: Module, label: str, token: Token, pin_digest: bytes | None, max_sessions: int) -> None:
        self.module = module
        self.label = label
        self.token = token
        self.pin_digest = pin_digest
        self.max_sessions = max_sessions
        self.users = 0
        # Holds the login (login state lives while any session is open) and serves start-up lookups.
        self.login_session: Session | None = None
        self._idle: list[PooledSession] = []
        self._open = 0
        self._available = threading.Condition()
        self._closed = False
        self._pid = os.getpid()
        # Users opened at once by threads of this process must agree on start-up work (one creates a key).
        self.setup_lock = threading.Lock()

    @contextmanager
    def borrow(self, clean: tuple[type[BaseException], ...] = ()) -> Iterator[PooledSession]:
        """A session for the ``with`` block. An exception leaves the session out of the pool (it may hold a
        half-done operation) unless it is one of ``clean``: failures the token ended cleanly."""
        if os.getpid() != self._pid:
            # PKCS#11 state does not survive fork(); each worker process must open its own.
            raise TokenUnavailable("PKCS#11 token used in a forked process; open it after forking")
        pooled = self._take()
        keep = False
        try:
            yield pooled
            keep = True
        except clean:
            keep = True
            raise
        finally:
            self._give_back(pooled, keep=keep)

    def _take(self) -> PooledSession:
        with self._available:
            while True:
                if self._closed:
                    raise TokenUnavailable(f"PKCS#11 token {self.label!r} is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.max_sessions:
                    self._open += 1
                    break
                self._available.wait()
        try:
            return PooledSession(self.token.open(rw=True))
        except BaseException:
            with self._available:
                self._open -= 1
                self._available.notify()
            raise

    def _give_back(self, pooled: PooledSession, keep: bool) -> None:
        with self._available:
            if keep and not self._closed:
                self._idle.append(pooled)
            else:
                self._open -= 1
                _close_quietly(pooled.session)
            self._available.notify()

    def close_all(self, drain_seconds: float = 5.0) -> None:
        """Close every session; first let borrowed ones come back, as finalising under a call could crash."""
        with self._available:
            self._closed = True
            for pooled in self._idle:
                _close_quietly(pooled.session)
            self._open -= len(self._idle)
            self._idle.clear()
            self._available.wait_for(lambda: self._open == 0, timeout=drain_seconds)
            if self.login_session is not None:
                _close_quietly(self.login_session)
                self.login_session = None
            self._available.notify_all()


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except p11e.PKCS11Error:
        pass


def open_token(module: Module, token_label: str, pins: PinSource, what: str, max_sessions: int) -> SharedToken:
    """Find the token and log in, or join this process's login on it (login state is per process, not session)."""
    with registry_lock:
        shared = module.tokens.get(token_label)
        if shared is not None:
            pin = pins.read(what)
            if shared.pin_digest is not None and not hmac.compare_digest(shared.pin_digest, pin_digest(pin)):
                # The token is logged in already; a wrong PIN must still be refused, as it would be on its own.
                raise ConfigurationError(f"{what}: token {token_label!r} rejected the PIN from {pins.describe()}")
            shared.users += 1
            return shared
        lib = module.lib
        assert lib is not None, "acquire_module loads it"
        try:
            token = lib.get_token(token_label=token_label)
        except p11e.NoSuchToken:
            labels = sorted(t.label for t in lib.get_tokens())
            raise ConfigurationError(f"{what}: no token labelled {token_label!r} (present: {labels})") from None
        except p11e.MultipleTokensReturned:
            raise ConfigurationError(f"{what}: several tokens are labelled {token_label!r}") from None
        pin = pins.read(what)
        try:
            session = token.open(rw=True, user_pin=pin or None)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange):
            raise ConfigurationError(f"{what}: token {token_label!r} rejected the PIN from {pins.describe()}") from None
        except p11e.PinLocked:
            raise ConfigurationError(f"{what}: the user PIN of token {token_label!r} is locked") from None
        except p11e.UserAlreadyLoggedIn:
            raise ConfigurationError(
                f"{what}: token {token_label!r} is already logged in by other code in this process"
            ) from None
        except p11e.PKCS11Error as exc:
            raise ConfigurationError(
                f"{what}: cannot open a session on {token_label!r}: {type(exc).__name__}"
            ) from None
        shared = SharedToken(module, token_label, token, pin_digest(pin) if pin else None, max_sessions)
        shared.login_session = session
        shared.users = 1
        module.tokens[token_label] = shared
        return shared


def release_token(shared: SharedToken) -> None:
    with registry_lock:
        if not last_user_gone(shared):
            return
        if shared.module.tokens.get(shared.label) is shared:
            del shared.module.tokens[shared.label]
    shared.close_all()


def log_in(
    library: str,
    init_args: ctypes.Structure,
    init_key: str,
    token_label: str,
    pins: PinSource,
    what: str,
    max_sessions: int,
) -> SharedToken:
    """Load and initialise ``library`` (see ``acquire_module``) and log in to its token ``token_label``."""
    module = acquire_module(library, init_args, init_key)
    try:
        return open_token(module, token_label, pins, what, max_sessions)
    except BaseException:
        release_module(module)
        raise


def log_out(shared: SharedToken) -> None:
    """Undo ``log_in``: leave the token (logged out with its last user) and the module (finalised likewise)."""
    release_token(shared)
    release_module(shared.module)
