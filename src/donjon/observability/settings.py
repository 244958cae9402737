"""The ``[metrics]`` and ``[log]`` sections of the settings (docs/configuration.md, docs/operations.md)."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork


class MetricsConfig(BaseModel):
    """``/metrics`` in Prometheus' text format."""

    model_config = ConfigDict(extra="forbid")  # as every settings table (config.Section)

    enabled: bool = True
    # Clients that may scrape /metrics, by the address that connects to donjon. Loopback only by default:
    # the metrics name no secret, but their routes, rates and errors are an operator's business. A request
    # that came through a proxy (Forwarded / X-Forwarded-For / X-Real-IP) is refused whatever the address.
    allow_from: list[IPvAnyNetwork] = Field(default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")])
    # Also count requests per project (donjon_http_requests_by_project_total). Off by default: a project
    # id may be a customer's name, and in dev mode any caller chooses it (one series per value).
    project_label: bool = False


class LogConfig(BaseModel):
    """The server's log on standard error: one access line per request, and the application's messages."""

    model_config = ConfigDict(extra="forbid")  # as every settings table (config.Section)

    # text: one human-readable line per record; json: one JSON object per line (JSON lines).
    format: Literal["text", "json"] = "text"
    # One line per request: method, route template, status, duration, request id, project, client address.
    access: bool = True
