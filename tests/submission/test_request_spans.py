"""The API's server spans: one per request, named by the route it matched, none for probes."""

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fairway_submission.app import TELEMETRY


def traced_app() -> tuple[FastAPI, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry={**TELEMETRY, "tracer_provider": provider})

    @app.post("/api/v1/workloads/{workload_type}", status_code=202)
    async def submit(workload_type: str) -> dict:
        return {"workloadType": workload_type}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {}

    return app, exporter


async def test_one_server_span_per_request_named_by_its_route_and_none_for_probes():
    app, exporter = traced_app()
    parent = "00-f1cecdf65495cc92c17ef43a44198964-ca208468c86497ee-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:
        assert (await client.post("/api/v1/workloads/trainings",
                                  headers={"traceparent": parent})).status_code == 202
        assert (await client.get("/healthz")).status_code == 200
    [span] = exporter.get_finished_spans()
    assert span.kind == SpanKind.SERVER
    assert span.name == "POST /api/v1/workloads/{workload_type}"
    assert span.attributes["http.route"] == "/api/v1/workloads/{workload_type}"
    assert span.attributes["http.response.status_code"] == 202
    # the caller's trace goes on
    assert format(span.context.trace_id, "032x") == "f1cecdf65495cc92c17ef43a44198964"
