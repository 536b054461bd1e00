"""JSON logs that carry the current trace and span ids.

One line per record on stderr, so the local supervisor can prefix it and a cluster's log
collector can parse it; ``trace_id``/``span_id`` let a log line be found from a trace.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from opentelemetry import trace

from ._log_export import export_handlers
from ._log_records import extra_fields


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with trace correlation."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry.update(extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: The level of the libraries' own INFO lines (Alembic, uvicorn, Dramatiq); unset: the root's.
LIBRARY_LOG_LEVEL_VARIABLE = "FLOTILLA_LIBRARY_LOG_LEVEL"


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of this process to stderr as JSON (and keep the OTLP export
    handler :func:`~flotilla.core.configure_telemetry` may have added).

    Args:
        service: the name put on every line (the OpenTelemetry service name).
        level: the root level, e.g. ``"INFO"``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler, *export_handlers()]
    root.setLevel(level)
    # NOTE: uvicorn installs its own handlers; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    # NOTE: a line per probe says nothing (aiohttp's servers: kopf's, the operator's probes);
    # Alembic's list of the plugins it sets up, twenty lines each migration
    for noisy in ("aiohttp.access", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel("WARNING")
    # NOTE: the libraries' own start and stop lines (Alembic's plugins and steps, uvicorn's
    # "Started server process", Dramatiq's "Shutting down"); `flotilla up` sets WARNING
    # unless --verbose. Their warnings and errors always pass.
    libraries = os.environ.get(LIBRARY_LOG_LEVEL_VARIABLE, "").strip().upper()
    if libraries:
        for name in ("alembic", "uvicorn.error", "dramatiq"):
            logging.getLogger(name).setLevel(libraries)
    # NOTE: a line per outgoing request (httpx's INFO) repeats what the trace shows, and the
    # console's health probes would print one every two seconds.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel("WARNING")
