"""Per-request observability: one access log line and the HTTP metrics, and the ``/metrics`` endpoint.

The middleware is the outermost one, so its duration covers everything donjon does for a request (the audit
record included) and it sees every answer, the 400/406 of a bad microversion too. What it reports is what a
request *is*: its method, the route template it matched, the status, the request id, the caller's project.
Never the path (it holds ids), the query string, a header (tokens) or a body (payloads, wrap tokens).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from donjon.api.errors import error_response
from donjon.api.middleware import ASGIApp, Message, Receive, Scope, Send
from donjon.api.routing import RouteIndex
from donjon.observability import metrics
from donjon.observability.logs import StderrHandler
from donjon.observability.settings import LogConfig, MetricsConfig

access_log = logging.getLogger("donjon.access")
_ACCESS_LINE = "%s %s %d %.1fms %s project=%s client=%s"

# Route label of a path that no route serves: one series for all of them, whatever was asked.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROXY_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip"})


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, routes: RouteIndex, log_config: LogConfig, metrics: MetricsConfig) -> None:
        self.app = app
        self.routes = routes
        # Each (method, route, status)'s counter and histogram: looking them up by label values costs more
        # than counting.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.access = log_config.access
        self.by_project = metrics.project_label

    def route_of(self, scope: Scope) -> str:
        """The template of the route serving ``scope`` (a path with another method: its template too)."""
        # The router left the route it matched (fully, or the path only: 405) in the scope.
        served = getattr(scope.get("route"), "path", None)
        if isinstance(served, str):
            return served
        # Answered before routing (a bad microversion: 400/406), or no route has that path (404).
        return self.routes.match(scope)[0] or UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the application raises before responding
        request_id = ""

        async def send_observed(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name == b"x-openstack-request-id":
                        request_id = bytes(value).decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # The inner middleware normalised the path (trailing slash) in this same scope.
            self._observe(scope, status, request_id, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, request_id: str, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = self.route_of(scope)
        caller = scope.get("state", {}).get("caller")
        project = _printable(getattr(caller, "project_id", "") or "")
        series = self._series.get((method, route, status))
        if series is None:
            # A bounded set: methods, route templates and statuses, never a path or an id.
            series = (
                metrics.HTTP_REQUESTS.labels(method, route, str(status)),
                metrics.HTTP_DURATION.labels(method, route),
            )
            self._series[method, route, status] = series
        count, duration = series
        count.inc()
        duration.observe(seconds)
        if self.by_project and project:
            metrics.HTTP_REQUESTS_BY_PROJECT.labels(project, method, str(status)).inc()
        if self.access:
            self._access_line(method, route, status, seconds, request_id, project, scope.get("client"))

    @staticmethod
    def _access_line(
        method: str, route: str, status: int, seconds: float, request_id: str, project: str, client: Any
    ) -> None:
        duration_ms, address = round(seconds * 1000, 1), client[0] if client else ""
        args = (method, route, status, duration_ms, request_id or "-", project or "-", address or "-")
        direct = StderrHandler.for_access(access_log)
        if direct is not None:  # the server's own text log: the same line, without a LogRecord
            direct.write_info(access_log.name, _ACCESS_LINE % args)
        elif access_log.isEnabledFor(logging.INFO):
            # Made and handled directly, as Logger.info would, less its caller lookup (a walk up the stack per
            # request, for a file and line that no log format here prints). The fields go to JSON lines.
            fields = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "project": project,
                "client": address,
            }
            record = access_log.makeRecord(access_log.name, logging.INFO, "", 0, _ACCESS_LINE, args, None, extra=fields)
            access_log.handle(record)


def _printable(value: str) -> str:
    # In dev mode the project is a header the client chose: no terminal escape or line break reaches the log.
    return value if value.isprintable() else value.encode("unicode_escape").decode("ascii")


def metrics_route(config: MetricsConfig) -> Route:
    """``GET /metrics``: the Prometheus text exposition, for the clients ``metrics.allow_from`` names."""
    networks = list(config.allow_from)

    async def endpoint(request: Request) -> Response:
        if not _allowed(request, networks):
            return error_response(
                403, "Metrics are served to the addresses in metrics.allow_from only, and not through a proxy."
            )
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    return Route("/metrics", endpoint, methods=["GET"])


def _allowed(request: Request, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    # A proxy on this host connects from loopback on behalf of anyone: what it forwards is not local.
    if any(name in _PROXY_HEADERS for name, _ in request.scope["headers"]):
        return False
    client = request.client
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
