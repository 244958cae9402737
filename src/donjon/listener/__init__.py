"""``donjon server``'s listener: the socket, TLS, the HTTP protocol and the worker supervisor around uvicorn.

* The socket is bound here, before any worker starts, so that a port already in use is one clear line
  and a non-zero exit rather than each worker's traceback.
* TLS (``tls.*``): uvicorn's ``ssl_context_factory`` builds the context in each worker (``tls.py``). On
  SIGHUP the supervisor forwards the signal to its workers, which reload the certificate in place, instead
  of uvicorn's default of replacing every worker (which would close the connections they hold).
* The HTTP protocol keeps the bounded request heads (``donjon.http_protocol``); without TLS it also answers
  a TLS handshake with a hint to use http:// (``plain.py``).
* Token and keystone modes refuse plain HTTP on a non-loopback address unless ``tls.behind_proxy`` says
  a TLS-terminating proxy is in front.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket

from donjon.auth.dev import is_loopback
from donjon.config import Settings
from donjon.connection_balance import BOARD_ENV, create_board
from donjon.errors import ConfigurationError

log = logging.getLogger("donjon.listener")


def check_transport(settings: Settings) -> str | None:
    """Check the TLS files, and refuse credentials in clear on the network; a line for the start-up log, if any."""
    tls = settings.tls
    if tls.enabled:
        from donjon.listener.tls import server_context

        server_context(tls)  # a bad file or key is one message here, not a traceback in each worker
        return None
    if settings.auth == "dev" or is_loopback(settings.host):
        return None
    if not tls.behind_proxy:
        raise ConfigurationError(
            f"auth={settings.auth} on {settings.host} without TLS would send tokens in clear: set tls.cert_file "
            "and tls.key_file (DONJON_TLS__CERT_FILE, DONJON_TLS__KEY_FILE), or tls.behind_proxy = true if a "
            "TLS-terminating proxy is in front (docs/operations.md)"
        )
    return (
        f"plain HTTP on {settings.host}:{settings.port}: tls.behind_proxy says a TLS-terminating proxy is in "
        "front; only it may reach this port"
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (inherited by the workers). ConfigurationError in one line if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is already in use (another donjon server?): stop that process, "
                "or listen on another port with --port or DONJON_PORT"
            ) from None
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, sock: socket.socket) -> None:
    """Serve ``donjon.asgi:create`` on ``sock`` until SIGINT or SIGTERM."""
    import uvicorn
    from uvicorn.supervisors.multiprocess import Multiprocess

    from donjon.listener.tls import uvicorn_factory
    from donjon.observability.logs import logging_config

    tls = settings.tls
    config = uvicorn.Config(
        "donjon.asgi:create",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        # donjon.access logs each request instead (route templates, not paths with ids: docs/operations.md).
        access_log=False,
        server_header=False,
        proxy_headers=False,
        # Bounded request heads: 431 past limits.max_header_bytes / max_request_head_bytes (http_protocol.py).
        http="donjon.http_protocol:BoundedHttpToolsProtocol"
        if tls.enabled
        else "donjon.listener.plain:PlainHttpProtocol",
        backlog=2048,
        log_config=logging_config(settings.log, settings.log_level),
        ssl_context_factory=uvicorn_factory(tls) if tls.enabled else None,
    )

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            if not tls.enabled:
                super().handle_hup()  # uvicorn's: replace the workers one by one
                return
            log.info("SIGHUP: the workers reload the TLS certificate")
            for process in self.processes:
                if process.pid is not None:
                    try:
                        os.kill(process.pid, signal.SIGHUP)
                    except ProcessLookupError:  # died meanwhile: its replacement loads the files anew
                        pass

    if settings.workers > 1:
        # The workers' open connections, for keep-alive balance (donjon.connection_balance); they inherit
        # this environment.
        board = create_board(settings.workers)
        os.environ[BOARD_ENV] = str(board)
        try:
            Supervisor(config, sockets=[sock]).run()
        finally:
            board.unlink(missing_ok=True)
    else:
        os.environ.pop(BOARD_ENV, None)  # one worker: nothing to balance
        # Not the default action (stop): with TLS the worker's own handler replaces this one (tls.py).
        signal.signal(signal.SIGHUP, lambda signum, frame: log.info("SIGHUP: nothing to reload without TLS"))
        uvicorn.Server(config).run(sockets=[sock])
