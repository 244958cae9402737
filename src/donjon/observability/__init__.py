"""What an operator watches: Prometheus metrics (``/metrics``) and the server's log (access lines, JSON).

docs/operations.md, "Metrics" and "Logs", describes both; the settings are ``[metrics]`` and ``[log]``.
"""

from donjon.observability.settings import LogConfig, MetricsConfig

__all__ = ["LogConfig", "MetricsConfig"]
