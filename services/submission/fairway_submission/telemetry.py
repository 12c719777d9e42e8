"""Telemetry and metrics through the public API (Run:ai's shapes).

`GET /workloads/telemetry` answers with current figures over the caller's projects;
`GET /org-unit/projects/{id}/metrics`, `/org-unit/departments/{id}/metrics` and
`/node-pools/{name}/metrics` with time series of stored samples. The metrics service owns the
figures: submission resolves the caller's scope from its own tables and asks over NATS
request/reply; it never reads the metrics service's tables.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from fairway_contracts import subjects
from fairway_contracts.telemetry import (
    MetricsQuery,
    MetricsReply,
    MetricType,
    QueryError,
    TelemetryGroupBy,
    TelemetryQuery,
    TelemetryReply,
    TelemetryType,
)
from fairway_submission import repository as repo
from fairway_submission.access import Grants, Perm
from fairway_submission.api import Context, load_grants
from fairway_submission.errors import ApiError, field_error
from fairway_telemetry import inject_headers

MAX_GROUP_BY = 2
QUERY_TIMEOUT_SECONDS = 5.0


def _listed(values: list[str] | None) -> list[str]:
    """A list parameter given repeated (`a=x&a=y`), comma-separated (`a=x,y`) or both."""
    return [item.strip() for value in values or [] for item in value.split(",")
            if item.strip()]


def parse_group_by(values: list[str] | None) -> list[TelemetryGroupBy]:
    known = {g.value: g for g in TelemetryGroupBy}
    out: list[TelemetryGroupBy] = []
    for item in _listed(values):
        group = known.get(item.lower())
        if group is None:
            raise field_error(422, "groupBy", f"{item!r} is not one of {', '.join(known)}")
        if group in out:
            raise field_error(422, "groupBy", f"{item!r} is given twice")
        out.append(group)
    if len(out) > MAX_GROUP_BY:
        raise field_error(422, "groupBy", f"at most {MAX_GROUP_BY} fields, got {len(out)}")
    return out


def parse_metric_types(values: list[str] | None) -> list[MetricType]:
    items = _listed(values)
    if not items:
        raise field_error(422, "metricType", "is required (for example GPU_ALLOCATION)")
    known = {m.value: m for m in MetricType}
    out: list[MetricType] = []
    for item in items:
        metric = known.get(item.upper())
        if metric is None:
            raise field_error(422, "metricType", f"{item!r} is not one of {', '.join(known)}")
        if metric not in out:
            out.append(metric)
    return out


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end] in UTC (a time without a zone is taken as UTC)."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise field_error(422, "end", "must be after start")
    return start, end


def build_router(ctx: Context) -> APIRouter:
    """The routes; included before the workload routes so that /workloads/telemetry is not
    read as a workload id."""
    router = APIRouter(prefix="/api/v1", tags=["telemetry"])

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Grants:
        principal = ctx.tokens.verify(authorization)
        async with ctx.pool.acquire() as conn:
            return await load_grants(conn, principal)

    Caller = Annotated[Grants, Depends(caller)]
    Samples = Annotated[int, Query(alias="numberOfSamples", ge=1, le=1000)]

    async def over_nats(subject: str, data: bytes) -> bytes:
        nc = ctx.service.broker._connection
        if nc is None or not nc.is_connected:
            raise ApiError(503, "the message broker is not reachable; try again shortly",
                           headers={"Retry-After": "2"})
        try:
            msg = await nc.request(subject, data, timeout=QUERY_TIMEOUT_SECONDS,
                                   headers=inject_headers())
        except (TimeoutError, NatsTimeout, NoRespondersError):
            raise ApiError(503, "the metrics service did not answer; try again shortly",
                           headers={"Retry-After": "2"}) from None
        return msg.data

    # The metrics service over NATS request/reply; tests without a broker put its pure
    # answers here (as they do for policy with ctx.evaluate).
    if getattr(ctx, "ask_metrics", None) is None:
        ctx.ask_metrics = over_nats

    async def ask(subject: str, query: BaseModel, reply_type: type[BaseModel]) -> Any:
        reply = reply_type.model_validate_json(await ctx.ask_metrics(subject, query.to_json()))
        if reply.error is not None:
            raise _refused(reply.error)
        return reply.model_dump(mode="json", by_alias=True, exclude={"error"})

    @router.get("/workloads/telemetry", response_model=TelemetryReply,
                response_model_exclude={"error"})
    async def workloads_telemetry(
        caller: Caller,
        telemetry_type: Annotated[TelemetryType, Query(alias="telemetryType")],
        group_by: Annotated[list[str] | None, Query(
            alias="groupBy", description="up to two of project, department, type, nodepool, "
                                         "phase; repeated or comma-separated")] = None,
        project_id: Annotated[str | None, Query(alias="projectId")] = None,
        department_id: Annotated[str | None, Query(alias="departmentId")] = None,
        cluster_id: Annotated[str | None, Query(
            alias="clusterId", description="accepted for Run:ai clients; Fairway manages one "
                                           "cluster")] = None,
        nodepool_name: Annotated[str | None, Query(alias="nodepoolName")] = None,
    ) -> dict[str, Any]:
        groups = parse_group_by(group_by)
        async with ctx.pool.acquire() as conn:
            projects = [str(row["id"]) for row in await repo.list_projects(conn)]
            if project_id is not None and await repo.get_project(conn, project_id) is None:
                raise field_error(404, "projectId", f"project {project_id} does not exist")
            if (department_id is not None
                    and await repo.get_department(conn, department_id) is None):
                raise field_error(404, "departmentId",
                                  f"department {department_id} does not exist")
        # A caller sees the figures of the projects whose workloads it may see, nothing else.
        visible, _ = caller.workload_scopes(projects)
        if project_id is not None:
            if project_id not in visible:
                raise field_error(404, "projectId", f"project {project_id} does not exist")
            visible = [project_id]
        if department_id is not None and not caller.roles_at(department_id=department_id):
            if not any(caller.departments.get(p) == department_id for p in visible):
                raise field_error(404, "departmentId",
                                  f"department {department_id} does not exist")
        query = TelemetryQuery(
            telemetry_type=telemetry_type, group_by=groups,
            project_ids=None if Perm.WORKLOAD_VIEW in caller.at_cluster() and project_id is None
            else visible,
            department_id=department_id, node_pool=nodepool_name)
        return await ask(subjects.METRICS_QUERY_TELEMETRY, query, TelemetryReply)

    async def series(scope: str, scope_id: str, metric_type: list[str] | None, start: datetime,
                     end: datetime, number_of_samples: int) -> dict[str, Any]:
        metrics = parse_metric_types(metric_type)
        start, end = window(start, end)
        query = MetricsQuery(scope=scope, scope_id=scope_id, metric_types=metrics,
                             start=start, end=end, number_of_samples=number_of_samples)
        return await ask(subjects.METRICS_QUERY_SERIES, query, MetricsReply)

    MetricTypes = Annotated[list[str] | None, Query(
        alias="metricType", description="GPU_QUOTA, GPU_ALLOCATION, GPU_UTILIZATION, ...; "
                                        "repeated or comma-separated")]

    @router.get("/org-unit/projects/{project_id}/metrics", response_model=MetricsReply,
                response_model_exclude={"error"})
    async def project_metrics(project_id: str, caller: Caller, start: datetime, end: datetime,
                              metric_type: MetricTypes = None,
                              number_of_samples: Samples = 20) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await repo.get_project(conn, project_id)
        if row is None:
            raise field_error(404, "projectId", f"project {project_id} does not exist")
        caller.require(Perm.ORG_VIEW, what=f"project {project_id}", project_id=str(row["id"]))
        return await series("project", str(row["id"]), metric_type, start, end,
                            number_of_samples)

    @router.get("/org-unit/departments/{department_id}/metrics", response_model=MetricsReply,
                response_model_exclude={"error"})
    async def department_metrics(department_id: str, caller: Caller, start: datetime,
                                 end: datetime, metric_type: MetricTypes = None,
                                 number_of_samples: Samples = 20) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await repo.get_department(conn, department_id)
        if row is None:
            raise field_error(404, "departmentId", f"department {department_id} does not exist")
        caller.require(Perm.ORG_VIEW, what=f"department {department_id}",
                       department_id=str(row["id"]))
        return await series("department", str(row["id"]), metric_type, start, end,
                            number_of_samples)

    @router.get("/node-pools/{pool}/metrics", response_model=MetricsReply,
                response_model_exclude={"error"})
    async def node_pool_metrics(pool: str, _: Caller, start: datetime, end: datetime,
                                metric_type: MetricTypes = None,
                                number_of_samples: Samples = 20) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await repo.get_node_pool(conn, pool)
        if row is None:
            raise field_error(404, "nodePoolName", f"no node pool {pool}")
        return await series("nodepool", row["name"], metric_type, start, end,
                            number_of_samples)

    return router


def _refused(error: QueryError) -> ApiError:
    field = {"telemetryType": "telemetryType", "groupBy": "groupBy",
             "metricTypes": "metricType", "numberOfSamples": "numberOfSamples"}.get(
        error.field.split(".")[0], error.field)
    return field_error(422, field, error.message)
