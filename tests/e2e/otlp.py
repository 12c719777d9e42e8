"""A minimal OTLP/HTTP trace receiver for tests: services export to it, tests read spans."""

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]
    links: tuple[tuple[str, str], ...] = ()  # (trace id, span id) of each linked span
    kind: int = 0


def _value(any_value) -> str:
    """An OTLP attribute value as text, whatever its type."""
    which = any_value.WhichOneof("value")
    return "" if which is None else str(getattr(any_value, which))


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "?")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attrs = {a.key: _value(a.value) for a in span.attributes}
                    links = tuple((link.trace_id.hex(), link.span_id.hex())
                                  for link in span.links)
                    found.append(ReceivedSpan(service, span.name, span.trace_id.hex(),
                                              span.span_id.hex(), span.parent_span_id.hex(),
                                              attrs, links, span.kind))
        with self._lock:
            self.spans.extend(found)

    def spans_in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def spans_linking_to(self, trace_id: str) -> list[ReceivedSpan]:
        """Spans of other traces with a link into `trace_id`."""
        with self._lock:
            return [s for s in self.spans
                    if s.trace_id != trace_id and any(t == trace_id for t, _ in s.links)]

    def __enter__(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
