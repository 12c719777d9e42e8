"""Submission: the public REST API, its users and projects, and the workload view. Wiring only:
the FastAPI app and its routers, the runtime, the service object, the message handlers and the
bootstrap at start."""

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig

from fairway_runtime import Service
from fairway_submission import errors, handlers, health
from fairway_submission.body_limit import BodyLimit
from fairway_submission.cache import AccessChanges
from fairway_submission.console import routes as console
from fairway_submission.dependencies import query_once
from fairway_submission.identity import routes as identity
from fairway_submission.org import nodes
from fairway_submission.org import routes as org
from fairway_submission.policies import routes as policies
from fairway_submission.service import Peers, SubmissionService
from fairway_submission.settings import SubmissionSettings
from fairway_submission.telemetry import routes as telemetry
from fairway_submission.workloads import routes as workloads

# In this order: /workloads/telemetry before /workloads/{workload_id}.
# Routes are matched in order: the workloads' (every submission, every look at one) come
# right after telemetry's, whose /workloads/telemetry their /workloads/{workload_id} would take.
ROUTERS = (telemetry.router, workloads.router, identity.router, org.router, nodes.router,
           policies.router, health.router, console.router)


def _unobserved(scope: dict) -> bool:
    """Probes and scrapes make no spans."""
    return any(word in scope.get("path", "") for word in ("healthz", "readyz", "metrics"))


# FastAPI's own tracing: one server span per request ("POST /api/v1/workloads/trainings", the
# caller's trace context its parent), nothing more. It names the span from the route FastAPI
# matched; the contrib instrumentation matched every route again per request, and wrapped
# every ASGI message: about 0.4 ms of CPU a request, a sixth of a submission's.
TELEMETRY: TelemetryConfig = {"tracing": True, "operation_spans": False, "metrics": False,
                              "logs": False, "exclude": _unobserved}


def build(settings: SubmissionSettings | None = None) -> Service:
    return wire(settings or SubmissionSettings())[0]


def wire(settings: SubmissionSettings, peers: Peers | None = None
         ) -> tuple[Service, SubmissionService]:
    """The runtime and the service object, wired: `build` for production, `testing` for the
    tests (which may bring their own peers)."""
    app = FastAPI(title="Fairway API", version="0.1.0", docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None,
                  dependencies=[Depends(query_once)], telemetry=TELEMETRY)
    runtime = Service("submission", settings, migrations=Path(__file__).parent / "migrations",
                      http_app=app)
    service = SubmissionService(runtime, settings, peers)
    app.state.submission = service
    errors.install(app)
    console.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessChanges, forget=service.forget)
    for router in ROUTERS:
        app.include_router(router)
    for route in runtime.probe_routes():
        if route.path != "/healthz":
            app.router.routes.append(route)
    handlers.register(service)

    @runtime.on_start
    async def bootstrap(_: Service) -> None:
        await service.bootstrap()

    @runtime.on_stop
    async def stop_reading_logs(_: Service) -> None:
        service.pod_logs.close()

    return runtime, service
