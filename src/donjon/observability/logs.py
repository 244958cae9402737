"""The server's logging set-up: text or JSON lines on standard error, for donjon's loggers and uvicorn's.

Handed to uvicorn as its ``log_config``, so each worker process applies it when it starts. uvicorn's own
access log stays off: it prints the raw path (resource ids) and the query string; ``donjon.access``
(:mod:`donjon.api.observability_middleware`) prints the route template instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from donjon.observability.settings import LogConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# JSON lines: these record attributes, then the access line's own fields (passed as ``extra``), then the
# time (ISO 8601, UTC). uvicorn's "color_message" (its message with terminal colours) is left out.
JSON_FIELDS = ["levelname", "name", "message"]
_NOT_FIELDS = [*RESERVED_ATTRS, "taskName", "color_message"]


class TextFormatter(logging.Formatter):
    """logging's text format, with each second's time stamp formatted once rather than once per line
    (``localtime`` and ``strftime`` were a third of formatting an access line)."""

    _stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, stamp = self._stamp  # one tuple, replaced whole: handlers of other threads see old or new
        if int(record.created) != second:
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._stamp = (int(record.created), stamp)
        return self.default_msec_format % (stamp, record.msecs) if self.default_msec_format else stamp


def logging_config(config: LogConfig, level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dictionary for ``config`` at ``level`` ("info", "debug"...)."""
    if config.format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger"},
            "reserved_attrs": _NOT_FIELDS,
            "timestamp": "time",
        }
    else:
        formatter = {"()": TextFormatter, "fmt": TEXT_FORMAT}
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "donjon", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"donjon": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "donjon": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
