"""The one table from domain errors to HTTP, and Barbican's error body ``{code, title, description}``."""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from starlette.responses import Response

from donjon.crypto import DecryptionFailed
from donjon.errors import (
    Conflict,
    DonjonError,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from donjon.storage.database import DatabaseUnavailable

log = logging.getLogger("donjon.api")

# A 503 is always something that may come back (the database, Keystone, a secret store, the audit sink):
# clients and load balancers are told when to try again.
RETRY_AFTER_SECONDS = 5

STATUS_OF: dict[type[DonjonError], int] = {
    InvalidInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Unavailable: 503,
}


def error_response(status: int, description: str | None, headers: dict[str, str] | None = None) -> Response:
    body = {"code": status, "title": HTTPStatus(status).phrase, "description": description}
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def response_for(exc: BaseException, operation: str) -> Response:
    """The response for an exception raised while serving ``operation`` (e.g. "Secret creation")."""
    if isinstance(exc, DatabaseUnavailable):
        log.warning("%s: the database is unreachable (%s)", operation, exc.cause)
    if isinstance(exc, DonjonError):
        for cls in type(exc).__mro__:
            status = STATUS_OF.get(cls)
            if status is not None:
                return error_response(status, exc.message)
    if isinstance(exc, DecryptionFailed):
        # A sealed payload that does not open under its own identity: tampering or a moved row.
        log.error("%s: a stored ciphertext failed authentication", operation)
    else:
        # The type only: an exception's text may quote data it was handed.
        log.error("%s: unexpected %s", operation, type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
    return error_response(500, f"{operation} failure seen - please contact site administrator.")
