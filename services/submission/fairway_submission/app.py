"""Submission: the public REST API, its users and projects, and the workload view."""

import logging
import secrets
from pathlib import Path

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from fairway_contracts import subjects
from fairway_contracts.events import ProjectChanged
from fairway_runtime import Service
from fairway_store import add_to_outbox
from fairway_submission import api, auth, errors, handlers
from fairway_submission import repository as repo
from fairway_submission.health import Heartbeats
from fairway_submission.settings import SubmissionSettings

log = logging.getLogger("fairway.submission")

ADMIN = "admin"


def build(settings: SubmissionSettings | None = None) -> Service:
    settings = settings or SubmissionSettings()
    app = FastAPI(title="Fairway API", version="0.1.0", docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    service = Service("submission", settings, migrations=Path(__file__).parent / "migrations",
                      http_app=app)
    heartbeats = Heartbeats(settings.heartbeat_seconds)
    ctx = api.Context(service, settings, heartbeats)
    errors.install(app)
    app.include_router(api.build_router(ctx))
    api.install_health(app, ctx)
    for route in service.probe_routes():
        if route.path != "/healthz":
            app.router.routes.append(route)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    handlers.register(service, heartbeats)

    @service.on_start
    async def bootstrap(service: Service) -> None:
        async with service.pool.acquire() as conn, conn.transaction():
            secret = settings.token_secret or await repo.put_setting_if_absent(
                conn, "token_secret", secrets.token_urlsafe(48))
            ctx.tokens = auth.Tokens(secret, settings.token_ttl_seconds)
            password = auth.new_password()
            created = await repo.create_user(conn, ADMIN, auth.hash_password(password),
                                             "System administrator")
            project, project_created = await repo.ensure_project(conn, settings.default_project)
            if project_created:
                await add_to_outbox(conn, subjects.org_project(str(project["id"])),
                                    ProjectChanged(event_id=f"project:{project['id']}:created",
                                                   project_id=str(project["id"]),
                                                   name=project["name"]),
                                    msg_id=f"project:{project['id']}:created")
        if settings.write_admin_files:
            token, _ = ctx.tokens.issue(ADMIN, "System administrator",
                                        settings.admin_token_ttl_seconds)
            auth.write_admin_files(settings.state_dir, f"http://127.0.0.1:{settings.http_port}",
                                   ADMIN, password if created else None, token)
        if created:
            log.info("created the bootstrap administrator; credentials in %s",
                     settings.state_dir / "admin.json")

    return service
