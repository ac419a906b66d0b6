"""How every process logs: text lines (the default), or with SCANLEDGER_LOG_FORMAT=json one JSON
object per line (structlog's formatter over the standard library's logging, so every library's
records come out as JSON too): `timestamp`, `level`, `logger`, `event` (the message) and whatever
the call passed as `extra` (a scan's `scan_id`, `kind`, `status`; a request's `method`, `path`, `status`,
`duration_ms`). Nothing here draws on a terminal: progress bars are the CLI's, and only on a TTY.
"""
from __future__ import annotations

import logging
import os

import structlog

LOG_FORMAT_ENV = "SCANLEDGER_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_format() -> str:
    fmt = (os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if fmt not in FORMATS:
        raise SystemExit(f"{LOG_FORMAT_ENV}={fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def json_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.stdlib.ExtraAdder(), structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()])


def formatter(fmt: str | None = None) -> logging.Formatter:
    return json_formatter() if (fmt or log_format()) == "json" else logging.Formatter(TEXT)


def configure(level: int = logging.INFO) -> None:
    """The root logger writes to stderr in the configured format (call once, at start)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format


def dict_config(level: str) -> dict | None:
    """For Faust's worker, which sets logging up itself with logging.config.dictConfig: None (its
    own text lines) unless the format is json."""
    if log_format() != "json":
        return None
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": json_formatter}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
            "root": {"level": level.upper(), "handlers": ["stderr"]}}


def client_logging() -> dict:
    """librdkafka's own log lines go straight to stderr in its format; with json they go through the
    `rdkafka` logger instead (confluent-kafka's `logger` setting), so they come out as JSON too."""
    return {"logger": logging.getLogger("rdkafka")} if log_format() == "json" else {}
