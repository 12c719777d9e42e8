"""Tracer provider from the standard OTEL_* variables, and W3C context in message headers.

The service's settings read the variables and pass what matters here as `TracingOptions`; the
OpenTelemetry SDK reads the rest (endpoint, headers, sampler argument, batch timings) itself.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

_provider: TracerProvider | None = None
# False once this process is known to record no span (it exports nowhere): see `consumer_span`.
_recording = True


@dataclass(frozen=True)
class TracingOptions:
    """`exporting`: an OTLP endpoint is configured and the SDK is not off.
    `service_name`: OTEL_SERVICE_NAME, which wins over the service's own name.
    `sampler_from_environment`: OTEL_TRACES_SAMPLER is set, so the SDK picks the sampler."""

    exporting: bool = False
    service_name: str | None = None
    sampler_from_environment: bool = False


def setup_tracing(service_name: str, options: TracingOptions) -> TracerProvider:
    """Install this process's tracer provider (once).

    With no OTLP endpoint the provider still creates spans (so trace ids reach logs and
    message headers) but exports nothing, and records nothing either: its spans carry their
    context only (a third of the cost of a recorded span, for every message and API call).
    """
    global _provider, _recording
    if _provider is not None:
        return _provider
    resource = Resource.create({"service.name": options.service_name or service_name})
    if not options.exporting:
        sampler = ALWAYS_OFF
    elif options.sampler_from_environment:
        sampler = None  # the standard environment decides
    else:
        # A message from a service that does not export carries an unsampled context: a
        # service that exports still records its part of the trace.
        sampler = ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)
    provider = TracerProvider(resource=resource, sampler=sampler)
    if options.exporting:
        # http/protobuf is the default protocol of the standard environment; Jaeger ingests it.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    _recording = options.exporting
    return provider


def shutdown_tracing() -> None:
    """Export what is buffered. The provider stays installed: a process sets it once, and a
    second service started in the same process (tests) keeps exporting."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(headers: dict[str, str] | None = None,
                   ctx: otel_context.Context | None = None) -> dict[str, str]:
    """Write the current (or given) trace context into a carrier of message headers."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier, context=ctx)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    return propagate.extract(dict(headers or {}))


def trace_headers_only(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The W3C headers (traceparent, tracestate, baggage) of a carrier, for storing."""
    keep = ("traceparent", "tracestate", "baggage")
    return {k: v for k, v in (headers or {}).items() if k.lower() in keep}


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x")


def linked_to(headers: Mapping[str, str] | None) -> list[trace.Link]:
    """A link to the span whose context the headers carry (none when they carry none)."""
    span_context = parent_of(headers)
    if not span_context.is_valid:
        return []
    return [trace.Link(span_context, {"fairway.link": "submission"})]


@contextmanager
def workload_span(tracer_: trace.Tracer, name: str, headers: Mapping[str, str] | None, *,
                  follow: bool, attributes: Mapping[str, object] | None = None
                  ) -> Iterator[trace.Span]:
    """A span of work on one workload, tied to its submission's trace (`headers`).

    `follow`: a child in the submission's trace — the work the submission causes right away.
    Otherwise the root of a new trace with a link back to the submission: later work (phase
    transitions driven by Kubernetes, minutes or days on) would make one trace without end,
    and Jaeger shows the link both ways.
    """
    if not _recording and _provider is not None:  # its context only: no links, no sampling
        span = _unrecorded(_provider, headers if follow else None)
        with trace.use_span(span, end_on_exit=False):
            yield span
        return
    if follow:
        with tracer_.start_as_current_span(name, context=extract_context(headers),
                                           attributes=attributes) as span:
            yield span
    else:
        with tracer_.start_as_current_span(name, context=otel_context.Context(),
                                           links=linked_to(headers),
                                           attributes=attributes) as span:
            yield span


def spans_recorded() -> bool:
    """Whether this process's spans are recorded (and exported). When not, a span carries its
    trace context only, and the attributes it would have been given need not be worked out."""
    return _recording


def consumer_span(tracer_: trace.Tracer, name: str, headers: Mapping[str, str] | None,
                  attributes: Callable[[], Mapping[str, object]]) -> trace.Span:
    """A started CONSUMER span for one message, child of the context its headers carry;
    `attributes` is called only if the span is recorded. Not recorded, it is the span the SDK
    would make (the parent's trace, a new span id, not sampled) without the SDK's sampling
    and attribute work: every message of every consumer starts one."""
    if _recording or _provider is None:
        return tracer_.start_span(name, context=extract_context(headers),
                                  kind=trace.SpanKind.CONSUMER, attributes=attributes())
    return _unrecorded(_provider, headers)


_HEX = frozenset("0123456789abcdef")


def parent_of(headers: Mapping[str, str] | None) -> SpanContext:
    """The span context the headers carry. A plain W3C `traceparent` (version 00, what every
    Fairway process sends) is read directly, in a tenth of the time of the configured
    propagators, which every consumed message paid; anything else goes through them."""
    if not headers:
        return trace.INVALID_SPAN_CONTEXT
    value = headers.get("traceparent")
    if (value is not None and len(value) == 55 and value[:3] == "00-" and value[35] == "-"
            and value[52] == "-" and _HEX.issuperset(value[3:35]) and _HEX.issuperset(
                value[36:52]) and _HEX.issuperset(value[53:])):
        trace_id, span_id = int(value[3:35], 16), int(value[36:52], 16)
        if trace_id and span_id:
            state = headers.get("tracestate")
            return SpanContext(trace_id, span_id, is_remote=True,
                               trace_flags=TraceFlags(int(value[53:], 16)),
                               trace_state=TraceState.from_header([state]) if state else None)
    return trace.get_current_span(extract_context(headers)).get_span_context()


def _unrecorded(provider: TracerProvider, headers: Mapping[str, str] | None) -> trace.Span:
    """The span an unsampled SDK makes: in the trace the headers carry (else a new one), with
    a new span id, not sampled."""
    ids = provider.id_generator
    parent = parent_of(headers)
    if parent.is_valid:
        trace_id, state = parent.trace_id, parent.trace_state
    else:
        trace_id, state = ids.generate_trace_id(), None
    return NonRecordingSpan(SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                                        trace_flags=TraceFlags(TraceFlags.DEFAULT),
                                        trace_state=state))


def workload_attributes(payload: object) -> dict[str, str]:
    """The fairway.* span attributes a message payload gives: workload id, project, phase,
    and for scheduler decisions what was decided (bind, or preempt with its reason)."""
    attributes: dict[str, str] = {}
    for field, key in (("workload_id", "fairway.workload_id"), ("project", "fairway.project")):
        value = getattr(payload, field, None)
        if isinstance(value, str):
            attributes[key] = value
    phase = getattr(payload, "phase", None)
    if phase is not None:
        attributes["fairway.phase"] = str(getattr(phase, "value", phase))
    if getattr(payload, "decision_id", None) is not None:
        reason = getattr(payload, "reason", None)
        placements = getattr(payload, "placements", None)
        if reason is not None:
            attributes["fairway.decision"] = f"preempt:{reason}"
        elif placements is not None:
            nodes = sorted({p.node for p in placements})
            attributes["fairway.decision"] = f"bind:{','.join(nodes)}"
    return attributes
