"""The public REST API (Run:ai-shaped): composes the route groups, resolves the caller."""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from fairway_contracts import subjects
from fairway_contracts.events import NodeInventory, PolicyEvaluateReply, PolicyEvaluateRequest
from fairway_runtime import Service
from fairway_submission import identity, nodes, org, workloads
from fairway_submission import repository as repo
from fairway_submission.access import Grants, Rule
from fairway_submission.auth import LoginLimiter, Principal, Tokens
from fairway_submission.errors import ApiError
from fairway_submission.health import Heartbeats
from fairway_submission.settings import SubmissionSettings
from fairway_telemetry import inject_headers

log = logging.getLogger("fairway.submission.api")

Evaluator = Callable[[PolicyEvaluateRequest], Awaitable[PolicyEvaluateReply]]


class Context:
    """What the routes need: set up by app.build before the first request."""

    def __init__(self, service: Service, settings: SubmissionSettings, heartbeats: Heartbeats):
        self.service = service
        self.settings = settings
        self.heartbeats = heartbeats
        self.tokens: Tokens | None = None
        self.limiter = LoginLimiter(settings.login_max_failures, settings.login_window_seconds)
        # Policy over NATS request/reply; tests put the pure evaluator here.
        self.evaluate: Evaluator = self._evaluate_over_nats
        # Node inventory from the INVENTORY stream; tests put a list here.
        self.read_inventory: Callable[[], Awaitable[list[NodeInventory]]] = (
            lambda: nodes.read_inventory(self))

    @property
    def pool(self) -> asyncpg.Pool:
        if self.service.pool is None:
            raise ApiError(503, "the service is starting")
        return self.service.pool

    async def _evaluate_over_nats(self, request: PolicyEvaluateRequest) -> PolicyEvaluateReply:
        nc = self.service.broker._connection
        try:
            msg = await nc.request(subjects.POLICY_EVALUATE, request.to_json(),
                                   timeout=self.settings.policy_timeout_seconds,
                                   headers=inject_headers())
        except (TimeoutError, NatsTimeout, NoRespondersError):
            raise ApiError(503, "the policy service did not answer; try again shortly",
                           headers={"Retry-After": "2"}) from None
        return PolicyEvaluateReply.model_validate_json(msg.data)


def build_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Grants:
        principal = ctx.tokens.verify(authorization)
        async with ctx.pool.acquire() as conn:
            return await load_grants(conn, principal)

    Caller = Annotated[Grants, Depends(caller)]
    identity.register(router, ctx, Caller)
    org.register(router, ctx, Caller)
    workloads.register(router, ctx, Caller)
    nodes.register(router, ctx, Caller)
    return router


async def load_grants(conn: asyncpg.Connection, principal: Principal) -> Grants:
    """The caller's access rules, now: a deleted user's or service account's token stops
    working at once, and a changed rule applies to the next request."""
    if not await repo.subject_exists(conn, principal.kind, principal.subject):
        raise ApiError(401, "the token's user or service account no longer exists",
                       headers={"WWW-Authenticate": "Bearer"})
    rows = await repo.rules_of(conn, principal.kind, principal.subject)
    rules = tuple(Rule(r["role_name"], r["scope_type"], r["scope_id"]) for r in rows)
    departments = await repo.project_departments(conn)
    return Grants(principal.subject, principal.kind, rules, departments)


def install_health(app: FastAPI, ctx: Context) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz(_: Request) -> JSONResponse:
        services = ctx.heartbeats.status(ctx.service.is_ready())
        healthy = all(state == "ready" for state in services.values())
        return JSONResponse({"status": "ok" if healthy else "starting", "services": services},
                            status_code=200 if healthy else 503)
