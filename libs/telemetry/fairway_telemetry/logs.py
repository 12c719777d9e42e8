"""Structured JSON logs that carry the service, the workload id and the trace id."""

import json
import logging
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace

workload_id_var: ContextVar[str | None] = ContextVar("workload_id", default=None)


@contextmanager
def workload_context(workload_id: str | None):
    """Every log line inside carries this workload id."""
    token = workload_id_var.set(workload_id)
    try:
        yield
    finally:
        workload_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        workload_id = getattr(record, "workload_id", None) or workload_id_var.get()
        if workload_id:
            entry["workload_id"] = workload_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr at `level` (the service's FAIRWAY_LOG_LEVEL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that log every request at INFO drown the workload story.
    for noisy in ("uvicorn.access", "kubernetes.client.rest", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
