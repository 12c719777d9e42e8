"""Fairway telemetry: traces (OTLP, as the OTEL_* settings say), trace context in NATS
headers, structured logs with workload and trace ids."""

from fairway_telemetry.logs import setup_logging, workload_context
from fairway_telemetry.tracing import (
    TracingOptions,
    consumer_span,
    current_trace_id,
    extract_context,
    inject_headers,
    linked_to,
    setup_tracing,
    shutdown_tracing,
    spans_recorded,
    trace_headers_only,
    tracer,
    workload_attributes,
    workload_span,
)

__all__ = [
    "TracingOptions",
    "consumer_span",
    "current_trace_id",
    "extract_context",
    "inject_headers",
    "linked_to",
    "setup_logging",
    "setup_tracing",
    "shutdown_tracing",
    "spans_recorded",
    "trace_headers_only",
    "tracer",
    "workload_attributes",
    "workload_context",
    "workload_span",
]
