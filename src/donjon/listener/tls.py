"""The server's TLS context: TLS 1.2 or later, optional client certificates, certificate reload in place.

Reload: ``load_cert_chain`` on the live context changes what *new* handshakes present; connections already
established keep their session, so nothing is dropped. The new pair is first loaded into a throwaway
context: a mismatched key or a half-written file leaves the serving certificate as it was (OpenSSL would
otherwise keep the new certificate with no usable key). ``client_ca_file`` is read at start only: a CA
cannot be taken back out of a live context, and a removed CA that stayed trusted would be a trap.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from typing import Any

from donjon.config import TlsConfig
from donjon.errors import ConfigurationError

log = logging.getLogger("donjon.tls")

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL"


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context for ``tls`` (its ``cert_file`` is set). Raises ConfigurationError naming the file."""
    assert tls.cert_file is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # TLS 1.2 suites: Mozilla's "intermediate" list, forward-secret AEAD only (Python's default adds CBC ones).
    context.set_ciphers(TLS12_CIPHERS)
    _load_pair(context, tls)
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"tls.client_ca_file {tls.client_ca_file}: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def reload(context: ssl.SSLContext, tls: TlsConfig) -> bool:
    """Load ``tls``'s certificate and key into the live ``context``; False (and logged) if they do not load."""
    try:
        _load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls)
    except ConfigurationError as exc:
        log.error("TLS certificate not reloaded, the previous one is still served: %s", exc.message)
        return False
    try:
        _load_pair(context, tls)
    except ConfigurationError as exc:
        # The files changed between the two loads (replaced again meanwhile): this worker's context may now
        # hold a certificate without its key. Loud, since only another SIGHUP or a restart repairs it.
        log.critical("TLS certificate reload failed part way (%s): send SIGHUP again or restart", exc.message)
        return False
    log.info("TLS certificate reloaded from %s", tls.cert_file)
    return True


def uvicorn_factory(tls: TlsConfig) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """uvicorn's ``ssl_context_factory``: runs in each worker, inside its event loop, before it serves.

    It also makes SIGHUP reload the certificate in that worker (the supervisor forwards its SIGHUP to them).
    """
    return _Factory(tls)


class _Factory:
    # A class, not a closure: uvicorn pickles its Config into each spawned worker process.
    def __init__(self, tls: TlsConfig) -> None:
        self.tls = tls

    def __call__(self, config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = server_context(self.tls)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a loop (not how uvicorn calls it): no reload
            return context
        loop.add_signal_handler(signal.SIGHUP, reload, context, self.tls)
        return context


def _load_pair(context: ssl.SSLContext, tls: TlsConfig) -> None:
    assert tls.cert_file is not None
    try:
        context.load_cert_chain(
            str(tls.cert_file), str(tls.key_file) if tls.key_file else None, password=_encrypted_key
        )
    except (OSError, ssl.SSLError) as exc:
        # The error names a file or an OpenSSL reason, never key material.
        raise ConfigurationError(
            f"tls.cert_file {tls.cert_file} / tls.key_file {tls.key_file or '(in cert_file)'}: {_reason(exc)}"
        ) from None


def _encrypted_key() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, and a service has none.
    raise ConfigurationError("tls.key_file is encrypted: donjon needs an unencrypted key, readable by donjon only")


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "not a usable PEM file"
    return exc.strerror or type(exc).__name__
