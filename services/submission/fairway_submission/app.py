"""Submission: the public REST API, its users and projects, and the workload view."""

import logging
import secrets
from pathlib import Path

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from fairway_runtime import Service
from fairway_submission import api, auth, errors, handlers, org, policies
from fairway_submission import repository as repo
from fairway_submission import telemetry as telemetry_api
from fairway_submission.access import SYSTEM_ADMIN
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
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(telemetry_api.build_router(ctx))  # before /workloads/{id}
    app.include_router(api.build_router(ctx))
    app.include_router(policies.build_router(ctx))
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
                                             SYSTEM_ADMIN)
            await repo.create_rule(conn, subject_type="user", subject_id=ADMIN,
                                   role_name=SYSTEM_ADMIN, scope_type="cluster", scope_id="",
                                   created_by="bootstrap")
            await repo.ensure_project(conn, settings.default_project)
            # The whole organisation, as it is now, on every start: the ORG stream keeps the
            # last message per unit, so consumers always find the current state there.
            await org.publish_everything(conn)
        if settings.write_admin_files:
            token, _ = ctx.tokens.issue(ADMIN, "user", settings.admin_token_ttl_seconds)
            auth.write_admin_files(settings.state_dir, f"http://127.0.0.1:{settings.http_port}",
                                   ADMIN, password if created else None, token)
        if created:
            log.info("created the bootstrap administrator; credentials in %s",
                     settings.state_dir / "admin.json")

    return service
