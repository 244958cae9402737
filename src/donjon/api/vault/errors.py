"""Vault's error bodies: ``{"errors": [...]}`` with Vault's exact texts and status codes.

Vault answers a policy denial on a logical path with Go's multierror text, and a failed token check with a
bare ``permission denied``; a plain "nothing here" 404 has an empty list. A donjon service error maps to
the Vault answer for the same situation (``response_for``); its message never holds a secret's bytes.
"""

from __future__ import annotations

from starlette.responses import Response

from donjon.api.errors import STATUS_OF
from donjon.api.errors import response_for as barbican_response_for
from donjon.api.vault.responses import json_body
from donjon.errors import DonjonError

PERMISSION_DENIED = "permission denied"


def multierror(message: str) -> str:
    """Go's ``multierror`` rendering of one error, as Vault's logical layer wraps them."""
    return f"1 error occurred:\n\t* {message}\n\n"


class VaultError(Exception):
    """An answer in Vault's error shape. ``messages`` are shown to the caller: never a secret's bytes."""

    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(status, *messages)
        self.status = status
        self.messages = list(messages)


def permission_denied() -> VaultError:
    """No, unknown, expired or used-up token (Vault's token check)."""
    return VaultError(403, PERMISSION_DENIED)


def policy_denied() -> VaultError:
    """A valid token whose policies do not grant the path (Vault's ACL check)."""
    return VaultError(403, multierror(PERMISSION_DENIED))


def not_found() -> VaultError:
    """Nothing at this path: 404 with an empty error list."""
    return VaultError(404)


def unsupported_operation() -> VaultError:
    return VaultError(405, multierror("unsupported operation"))


def unsupported_path() -> VaultError:
    return VaultError(404, multierror("unsupported path"))


def no_handler(path: str) -> VaultError:
    return VaultError(404, f'no handler for route "{path}". route entry not found.')


def bad_request(message: str) -> VaultError:
    return VaultError(400, message)


def error_response(status: int, messages: list[str]) -> Response:
    return json_body({"errors": messages}, status)


def response_for(exc: BaseException) -> Response:
    """The Vault answer for an exception raised while serving a request (a 500 only for a bug)."""
    if isinstance(exc, VaultError):
        return error_response(exc.status, exc.messages)
    if isinstance(exc, DonjonError):
        status = next((STATUS_OF[cls] for cls in type(exc).__mro__ if cls in STATUS_OF), 400)
        if status == 401:
            return error_response(403, [PERMISSION_DENIED])
        if status == 403:
            return error_response(403, [multierror(PERMISSION_DENIED)])
        if status == 404:
            return error_response(404, [])
        if status == 405:
            return error_response(405, [multierror("unsupported operation")])
        # Vault has no 409: a state that forbids the operation is a 400, as its check-and-set mismatch.
        return error_response(400 if status == 409 else status, [exc.message])
    # Barbican's mapper logs it (by type only, never its text) and knows the database's outage (503).
    barbican = barbican_response_for(exc, "Vault API request")
    return error_response(barbican.status_code, ["internal error" if barbican.status_code == 500 else "unavailable"])
