"""The SDK's errors. Every backend translates its own failures into these, ``raise ... from`` the original.

::

    ClientError
    ├── ConfigError        the configuration is wrong (unknown type, missing option, unreadable file)
    ├── NotSupported       this backend cannot do that (e.g. consumers on Vault)
    ├── NotFound           no such object, or one the caller may not see
    ├── Unauthorized       credentials missing, expired or refused (HTTP 401)
    ├── Forbidden          authenticated, but not allowed (HTTP 403)
    ├── InvalidRequest     the backend refused the input (HTTP 400, 406, 413, 415; bad sizes or types)
    ├── Conflict           the object's state forbids it (HTTP 409, consumers still registered)
    └── BackendError       the backend failed or could not be reached (5xx, network, device error)
        └── OrderFailed    an asynchronous order ended in ERROR

Messages never carry secret bytes, tokens or PINs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from donjon.errors import ConfigurationError


class ClientError(Exception):
    """Base of every SDK error. ``status`` is the HTTP status when one was involved."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ConfigError(ClientError):
    """The key manager's configuration is wrong."""


class NotSupported(ClientError):
    """The backend does not offer this operation."""


class NotFound(ClientError):
    """No such object (or one the caller may not see)."""


class Unauthorized(ClientError):
    """Authentication is missing or was refused."""


class Forbidden(ClientError):
    """The caller is authenticated but not allowed."""


class InvalidRequest(ClientError):
    """The backend refused the request's content."""


class Conflict(ClientError):
    """The object's state forbids the operation."""


class BackendError(ClientError):
    """The backend failed or could not be reached."""


class OrderFailed(BackendError):
    """An order ended in ERROR; ``status`` is the order's error status code when it has one."""


def for_status(status: int) -> type[ClientError]:
    """The error class for an HTTP error status: the one table the HTTP backend uses."""
    if status == 404:
        return NotFound
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status == 409:
        return Conflict
    if status in (400, 405, 406, 411, 413, 415, 422):
        return InvalidRequest
    return BackendError


@contextmanager
def configuration_errors() -> Iterator[None]:
    """donjon's ``ConfigurationError`` (from the shared options and drivers) as the SDK's ``ConfigError``."""
    try:
        yield
    except ConfigurationError as exc:
        raise ConfigError(exc.message) from exc
