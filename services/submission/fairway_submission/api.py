"""The public REST API (Run:ai-shaped): token, projects, trainings, workloads, health."""

import logging
import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from fairway_contracts import WorkloadType, subjects
from fairway_contracts.events import (
    PolicyEvaluateReply,
    PolicyEvaluateRequest,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import utcnow
from fairway_runtime import Service
from fairway_store import add_to_outbox
from fairway_submission import repository as repo
from fairway_submission.auth import Principal, Tokens, verify_password
from fairway_submission.domain import (
    LIST_FIELDS,
    TokenRequest,
    TrainingCreate,
    Workload,
    parse_filters,
    with_suffix,
)
from fairway_submission.errors import ApiError, field_error
from fairway_submission.health import Heartbeats
from fairway_submission.settings import SubmissionSettings
from fairway_telemetry import inject_headers, workload_context

log = logging.getLogger("fairway.submission.api")


class Context:
    """What the routes need: set up by app.build before the first request."""

    def __init__(self, service: Service, settings: SubmissionSettings, heartbeats: Heartbeats):
        self.service = service
        self.settings = settings
        self.heartbeats = heartbeats
        self.tokens: Tokens | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self.service.pool is None:
            raise ApiError(503, "the service is starting")
        return self.service.pool


def to_workload(row: asyncpg.Record) -> dict[str, Any]:
    spec = row["effective_spec"]
    pods = row["pods"] or []
    gpus_per_pod = (spec.get("compute") or {}).get("gpuDevicesRequest") or 0
    running = [p for p in pods if p.get("node") and p.get("phase") == "Running"]
    bound = [p for p in pods if p.get("node") and p.get("phase") in ("Pending", "Running")]
    now = utcnow()
    pending = row["total_pending_seconds"] + (
        (now - row["pending_since"]).total_seconds() if row["pending_since"] else 0)
    run = row["total_running_seconds"] + (
        (now - row["running_since"]).total_seconds() if row["running_since"] else 0)
    return Workload(
        workload_id=str(row["workload_id"]), name=row["name"], project_id=str(row["project_id"]),
        project_name=row["project"], type=row["workload_type"], created_at=row["created_at"],
        created_by=row["created_by"], desired_phase=row["desired_phase"], phase=row["phase"],
        phase_reason=row["phase_reason"], phase_message=row["phase_message"],
        priority_class_name=spec.get("priorityClass", ""),
        preemptible=bool(spec.get("preemptible")),
        requested_node_pools=spec.get("nodePools") or [],
        current_node_pools=[],
        allocated_resources={"gpu": gpus_per_pod * len(bound)},
        requested_resources={"gpu": gpus_per_pod * spec.get("pods", 1),
                             "pods": spec.get("pods", 1)},
        running_pods=len(running), requested_pods=spec.get("pods", 1),
        total_pending_time_seconds=round(pending, 3), total_running_time_seconds=round(run, 3),
        spec=row["submitted_spec"],
    ).model_dump(mode="json", by_alias=True)


def build_router(ctx: Context) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        return ctx.tokens.verify(authorization)

    Caller = Annotated[Principal, Depends(principal)]

    @router.post("/token", tags=["auth"])
    async def token(body: TokenRequest) -> dict[str, Any]:
        if body.grant_type != "password":
            raise field_error(400, "grantType", "only 'password' is supported in this version")
        if not body.username or not body.password:
            raise ApiError(400, "username and password are required",
                           [{"field": "username", "reason": "is required"},
                            {"field": "password", "reason": "is required"}])
        async with ctx.pool.acquire() as conn:
            user = await repo.get_user(conn, body.username)
        if user is None or not verify_password(user["password_hash"], body.password):
            raise ApiError(401, "wrong username or password")
        access, ttl = ctx.tokens.issue(user["username"], user["role"])
        return {"accessToken": access, "expiresIn": ttl, "tokenType": "Bearer"}

    @router.get("/org-unit/projects", tags=["organisation"])
    async def projects(_: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_projects(conn)
        items = [{"id": str(r["id"]), "name": r["name"], "createdAt": r["created_at"].isoformat(),
                  "parentId": None, "resources": [], "defaultNodePools": []} for r in rows]
        return {"projects": items, "next": None, "totalCount": len(items)}

    @router.post("/workloads/trainings", status_code=202, tags=["workloads"])
    async def submit_training(body: TrainingCreate, caller: Caller) -> JSONResponse:
        return await _submit(ctx, WorkloadType.TRAINING, body, caller)

    @router.get("/workloads", tags=["workloads"])
    async def list_workloads(
        _: Caller,
        filter_by: Annotated[str | None, Query(alias="filterBy")] = None,
        sort_by: Annotated[str, Query(alias="sortBy")] = "createdAt",
        sort_order: Annotated[str, Query(alias="sortOrder", pattern="^(asc|desc)$")] = "desc",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        try:
            filters = parse_filters(filter_by)
        except ValueError as exc:
            raise field_error(400, "filterBy", str(exc)) from None
        if sort_by not in LIST_FIELDS:
            raise field_error(400, "sortBy", f"use one of {', '.join(LIST_FIELDS)}")
        async with ctx.pool.acquire() as conn:
            rows, total = await repo.list_workloads(conn, filters, LIST_FIELDS[sort_by],
                                                    sort_order == "desc", offset, limit)
        return {"workloads": [to_workload(r) for r in rows], "totalCount": total,
                "next": offset + len(rows) if offset + len(rows) < total else None}

    @router.get("/workloads/{workload_id}", tags=["workloads"])
    async def get_workload(workload_id: str, _: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await repo.get_workload(conn, workload_id)
        if row is None:
            raise field_error(404, "workloadId", f"no workload {workload_id}")
        return to_workload(row)

    @router.get("/workloads/{workload_id}/events", tags=["workloads"])
    async def workload_events(workload_id: str, _: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await repo.get_workload(conn, workload_id)
            if row is None:
                raise field_error(404, "workloadId", f"no workload {workload_id}")
            history = await repo.phase_history(conn, row["workload_id"])
        return {"events": [
            {"sequence": h["sequence"], "from": h["previous_phase"], "to": h["phase"],
             "reason": h["reason"], "message": h["message"], "time": h["time"].isoformat()}
            for h in history]}

    return router


async def _submit(ctx: Context, workload_type: WorkloadType, body: TrainingCreate,
                  caller: Principal) -> JSONResponse:
    async with ctx.pool.acquire() as conn:
        project = await repo.get_project(conn, body.project_id)
    if project is None:
        raise field_error(404, "projectId", f"project {body.project_id!r} does not exist")
    name = with_suffix(body.name) if body.use_given_name_as_prefix else body.name
    submitted = body.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    reply = await _evaluate(ctx, workload_type, project["name"], name, submitted)
    if not reply.ok or reply.effective_spec is None:
        details = [{"field": v.field, "reason": v.message, "rule": v.rule}
                   for v in reply.violations]
        raise ApiError(422, "the workload violates policy: "
                       + "; ".join(f"{d['field']}: {d['reason']}" for d in details), details)
    workload_id = uuid.uuid4()
    created_at = utcnow()
    event = WorkloadSubmitted(
        event_id=str(workload_id), workload_id=str(workload_id), name=name,
        project=project["name"], project_id=str(project["id"]), workload_type=workload_type,
        created_at=created_at, created_by=caller.subject, spec=reply.effective_spec)
    with workload_context(str(workload_id)):
        async with ctx.pool.acquire() as conn, conn.transaction():
            inserted = await repo.insert_workload(
                conn, workload_id=workload_id, name=name, project=project,
                workload_type=workload_type.value, submitted=submitted,
                effective=reply.effective_spec.model_dump(mode="json", by_alias=True),
                created_by=caller.subject, created_at=created_at)
            if not inserted:
                raise field_error(409, "name",
                                  f"a workload named {name!r} already exists in project "
                                  f"{project['name']}")
            await add_to_outbox(conn, subjects.workload_submitted(project["name"],
                                                                  str(workload_id)),
                                event, msg_id=f"submitted:{workload_id}")
            row = await repo.get_workload(conn, str(workload_id))
        log.info("accepted training %s in project %s", name, project["name"])
    return JSONResponse(to_workload(row), status_code=202)


async def _evaluate(ctx: Context, workload_type: WorkloadType, project: str, name: str,
                    spec: dict[str, Any]) -> PolicyEvaluateReply:
    request = PolicyEvaluateRequest(workload_type=workload_type, project=project, name=name,
                                    spec=spec)
    nc = ctx.service.broker._connection
    try:
        msg = await nc.request(subjects.POLICY_EVALUATE, request.to_json(),
                               timeout=ctx.settings.policy_timeout_seconds,
                               headers=inject_headers())
    except (TimeoutError, NatsTimeout, NoRespondersError):
        raise ApiError(503, "the policy service did not answer; try again shortly",
                       headers={"Retry-After": "2"}) from None
    return PolicyEvaluateReply.model_validate_json(msg.data)


def install_health(app: FastAPI, ctx: Context) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz(_: Request) -> JSONResponse:
        services = ctx.heartbeats.status(ctx.service.is_ready())
        healthy = all(state == "ready" for state in services.values())
        return JSONResponse({"status": "ok" if healthy else "starting", "services": services},
                            status_code=200 if healthy else 503)
