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
        return self.time_of(record.created, record.msecs)

    def time_of(self, created: float, msecs: float) -> str:
        """``asctime`` of a record made at ``created`` (its ``msecs`` as LogRecord computes them)."""
        second, stamp = self._stamp  # one tuple, replaced whole: handlers of other threads see old or new
        if int(created) != second:
            stamp = time.strftime(self.default_time_format, self.converter(created))
            self._stamp = (int(created), stamp)
        return self.default_msec_format % (stamp, msecs) if self.default_msec_format else stamp


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # (generic in typeshed only)
    """The server's handler (standard error), with a direct way in for the access log's lines.

    An access line through ``logging`` (a LogRecord of some twenty attributes, the filters, the handler chain,
    the formatter) cost ~30-40 µs of a worker's CPU per request under load, a third of a trivial request's
    (bench/README.md). :meth:`for_access` says when the line can be written directly, the same bytes
    as the record would have given: the server's own text set-up, nothing added to it since (a test's
    ``caplog``, a filter, a handler of an embedding program), the logger enabled for INFO.
    """

    @classmethod
    def for_access(cls, logger: logging.Logger) -> StderrHandler | None:
        """The handler that would write ``logger``'s INFO records as the server set it up; None otherwise."""
        if logger.handlers or logger.filters or not logger.propagate or not logger.isEnabledFor(logging.INFO):
            return None
        parent = logger.parent
        if parent is None or parent.propagate or parent.filters or len(parent.handlers) != 1:
            return None
        handler = parent.handlers[0]
        if type(handler) is not cls or handler.filters or handler.level > logging.INFO:
            return None
        formatter = handler.formatter
        if type(formatter) is not TextFormatter or formatter._fmt != TEXT_FORMAT:
            return None
        return handler

    def write_info(self, name: str, message: str) -> None:
        """What ``emit`` writes for an INFO record of logger ``name`` with ``message``, made now."""
        created = time.time()
        formatter = self.formatter
        assert isinstance(formatter, TextFormatter)  # for_access checked it
        # LogRecord's msecs, to the same digit.
        stamp = formatter.time_of(created, int((created - int(created)) * 1000) + 0.0)
        line = f"{stamp} INFO {name}: {message}{self.terminator}"
        self.acquire()
        try:
            self.stream.write(line)
            self.flush()
        except Exception:  # noqa: BLE001 - as emit: a log that cannot be written does not fail the request
            self.handleError(logging.makeLogRecord({"name": name, "msg": message, "levelno": logging.INFO}))
        finally:
            self.release()


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
    handler = {"class": f"{__name__}.StderrHandler", "formatter": "donjon", "stream": "ext://sys.stderr"}
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
