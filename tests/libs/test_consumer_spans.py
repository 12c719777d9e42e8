"""A consumed message's span: the same trace context whether or not the process records spans,
and nothing worked out for a span nobody records."""

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from fairway_telemetry import consumer_span, tracing

PARENT = {"traceparent": "00-f1cecdf65495cc92c17ef43a44198964-ca208468c86497ee-01"}
TRACE_ID = 0xF1CECDF65495CC92C17EF43A44198964


def never_asked() -> dict:
    raise AssertionError("attributes worked out for a span nobody records")


def test_an_unrecorded_span_goes_on_with_the_senders_trace_without_working_out_attributes(
        monkeypatch):
    provider = TracerProvider(sampler=ALWAYS_OFF)
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_recording", False)
    tracer = provider.get_tracer("test")
    span = consumer_span(tracer, "x handle", PARENT, never_asked)
    context = span.get_span_context()
    assert not span.is_recording() and not context.trace_flags.sampled
    assert context.trace_id == TRACE_ID and context.span_id != 0xCA208468C86497EE
    # what the SDK itself makes of it, but for the span id
    sdk = tracer.start_span("x handle", context=tracing.extract_context(PARENT))
    assert (sdk.get_span_context().trace_id, sdk.get_span_context().trace_flags) == (
        context.trace_id, context.trace_flags)
    # no context in the headers: a trace of its own
    alone = consumer_span(tracer, "x handle", {}, never_asked).get_span_context()
    assert alone.is_valid and alone.trace_id != TRACE_ID


def test_a_recorded_span_carries_its_attributes_and_the_senders_trace(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_recording", True)
    consumer_span(provider.get_tracer("test"), "x handle", PARENT,
                  lambda: {"fairway.workload_id": "w-1"}).end()
    [span] = exporter.get_finished_spans()
    assert span.attributes["fairway.workload_id"] == "w-1"
    assert span.context.trace_id == TRACE_ID and span.parent.span_id == 0xCA208468C86497EE


def test_an_unrecorded_workload_span_follows_the_submission_or_starts_a_trace_and_is_current(
        monkeypatch):
    provider = TracerProvider(sampler=ALWAYS_OFF)
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_recording", False)
    tracer = provider.get_tracer("test")
    with tracing.workload_span(tracer, "reconcile", PARENT, follow=True) as span:
        assert tracing.current_trace_id() == f"{TRACE_ID:032x}"
        assert tracing.inject_headers()["traceparent"].endswith(
            f"-{span.get_span_context().span_id:016x}-00")
    with tracing.workload_span(tracer, "reconcile", PARENT, follow=False):
        later = tracing.current_trace_id()
        assert later is not None and later != f"{TRACE_ID:032x}"
    assert tracing.current_trace_id() is None


HEADERS = [
    PARENT,
    {"traceparent": "00-f1cecdf65495cc92c17ef43a44198964-ca208468c86497ee-00",
     "tracestate": "vendor=a,other=b"},
    {"traceparent": "00-00000000000000000000000000000000-ca208468c86497ee-01"},  # zero trace
    {"traceparent": "00-f1cecdf65495cc92c17ef43a44198964-0000000000000000-01"},  # zero span
    {"traceparent": "00-F1CECDF65495CC92C17EF43A44198964-ca208468c86497ee-01"},  # upper case
    {"traceparent": "01-f1cecdf65495cc92c17ef43a44198964-ca208468c86497ee-01-future"},
    {"traceparent": "ff-f1cecdf65495cc92c17ef43a44198964-ca208468c86497ee-01"},
    {"traceparent": "00-f1cecdf65495cc92c17ef43a44198964-ca208468c86497ee-01 "},
    {"traceparent": "garbage"},
    {"Nats-Msg-Id": "x"},
    {},
    None,
]


def test_the_parent_read_directly_is_what_the_propagators_read():
    for headers in HEADERS:
        expected = tracing.trace.get_current_span(
            tracing.extract_context(headers)).get_span_context()
        got = tracing.parent_of(headers)
        assert (got, got.trace_state, got.is_remote) == (
            expected, expected.trace_state, expected.is_remote), headers
