"""Domain errors. Services raise these; the API turns them into HTTP in exactly one place.

Messages are written for the caller and never contain a secret's bytes.
"""

from __future__ import annotations


class DonjonError(Exception):
    """Base of every error a caller may see. ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DonjonError):
    """The request is well-formed HTTP but its content is not acceptable (400)."""


class NotFound(DonjonError):
    """No such resource, or one the caller may not see (404: no existence oracle)."""


class Conflict(DonjonError):
    """The resource's state forbids the operation (409)."""


class TooLarge(DonjonError):
    """A body or payload is over the configured limit (413)."""


class UnsupportedMediaType(DonjonError):
    """The request's Content-Type is not one this endpoint takes (415)."""


class NotAcceptable(DonjonError):
    """The requested representation cannot be produced (406)."""


class MethodNotAllowed(DonjonError):
    """The resource exists but refuses this method, with a reason (405)."""


class Forbidden(DonjonError):
    """Policy or quota denies the operation (403)."""


class Unauthorized(DonjonError):
    """The caller is not authenticated (401)."""


class Unavailable(DonjonError):
    """A backend the request needs (a secret store, a keystore) cannot be used right now (503)."""


class ConfigurationError(DonjonError):
    """The server's configuration is unusable; raised at start-up, never to a client."""
