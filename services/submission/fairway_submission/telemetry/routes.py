"""Telemetry and metrics through the public API (Run:ai's shapes).

`GET /workloads/telemetry` answers with current figures over the caller's projects;
`GET /org-unit/projects/{id}/metrics`, `/org-unit/departments/{id}/metrics` and
`/node-pools/{name}/metrics` with time series of stored samples. The metrics service owns the
figures: submission resolves the caller's scope from its own tables and asks over NATS
request/reply; it never reads the metrics service's tables. The router is included before the
workload routes, so that /workloads/telemetry is not read as a workload id.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from fairway_contracts import subjects
from fairway_contracts.base import Contract
from fairway_contracts.telemetry import (
    MetricsQuery,
    MetricsReply,
    TelemetryQuery,
    TelemetryReply,
    TelemetryType,
)
from fairway_submission import repository as repo
from fairway_submission.core.access import Perm
from fairway_submission.core.errors import field_error
from fairway_submission.dependencies import Caller, Submission
from fairway_submission.models import errors
from fairway_submission.service import SubmissionService
from fairway_submission.telemetry.checks import (
    parse_group_by,
    parse_metric_types,
    refused,
    window,
)

router = APIRouter(prefix="/api/v1", tags=["telemetry"])
Samples = Annotated[int, Query(alias="numberOfSamples", ge=1, le=1000)]
# A name or id given empty is a mistake, not "any": refused rather than read as absent.
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


async def _ask(service: SubmissionService, subject: str, query: Contract,
               reply_type: type[TelemetryReply | MetricsReply]) -> dict[str, Any]:
    reply = reply_type.model_validate_json(await service.ask("metrics", subject, query))
    if reply.error is not None:
        raise refused(reply.error)
    return reply.model_dump(mode="json", by_alias=True, exclude={"error"})


@router.get("/workloads/telemetry", response_model=TelemetryReply,
            response_model_exclude={"error"}, responses=errors(400, 401, 404, 422, 503))
async def workloads_telemetry(
    caller: Caller,
    service: Submission,
    telemetry_type: Annotated[TelemetryType, Query(alias="telemetryType")],
    group_by: Annotated[list[NonEmpty] | None, Query(
        alias="groupBy", description="up to two of project, department, type, nodepool, "
                                     "phase; repeated or comma-separated")] = None,
    project_id: Annotated[str | None, Query(alias="projectId", min_length=1)] = None,
    department_id: Annotated[str | None, Query(alias="departmentId", min_length=1)] = None,
    cluster_id: Annotated[str | None, Query(
        alias="clusterId", description="accepted for Run:ai clients; Fairway manages one "
                                       "cluster")] = None,
    nodepool_name: Annotated[str | None, Query(alias="nodepoolName", min_length=1)] = None,
) -> dict[str, Any]:
    groups = parse_group_by(group_by)
    async with service.pool.acquire() as conn:
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
    return await _ask(service, subjects.METRICS_QUERY_TELEMETRY, query, TelemetryReply)


async def _series(service: SubmissionService, scope: str, scope_id: str,
                  metric_type: list[str] | None, start: datetime, end: datetime,
                  number_of_samples: int) -> dict[str, Any]:
    metrics = parse_metric_types(metric_type)
    start, end = window(start, end)
    query = MetricsQuery(scope=scope, scope_id=scope_id, metric_types=metrics,
                         start=start, end=end, number_of_samples=number_of_samples)
    return await _ask(service, subjects.METRICS_QUERY_SERIES, query, MetricsReply)


MetricTypes = Annotated[list[str] | None, Query(
    alias="metricType", description="GPU_QUOTA, GPU_ALLOCATION, GPU_UTILIZATION, ...; "
                                    "repeated or comma-separated")]


@router.get("/org-unit/projects/{project_id}/metrics", response_model=MetricsReply,
            response_model_exclude={"error"},
            responses=errors(400, 401, 403, 404, 422, 503))
async def project_metrics(project_id: str, caller: Caller, service: Submission,
                          start: datetime, end: datetime,
                          metric_type: MetricTypes = None,
                          number_of_samples: Samples = 20) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await repo.get_project(conn, project_id)
    if row is None:
        raise field_error(404, "projectId", f"project {project_id} does not exist")
    caller.require(Perm.ORG_VIEW, what=f"project {project_id}", project_id=str(row["id"]))
    return await _series(service, "project", str(row["id"]), metric_type, start, end,
                         number_of_samples)


@router.get("/org-unit/departments/{department_id}/metrics", response_model=MetricsReply,
            response_model_exclude={"error"},
            responses=errors(400, 401, 403, 404, 422, 503))
async def department_metrics(department_id: str, caller: Caller, service: Submission,
                             start: datetime, end: datetime, metric_type: MetricTypes = None,
                             number_of_samples: Samples = 20) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await repo.get_department(conn, department_id)
    if row is None:
        raise field_error(404, "departmentId", f"department {department_id} does not exist")
    caller.require(Perm.ORG_VIEW, what=f"department {department_id}",
                   department_id=str(row["id"]))
    return await _series(service, "department", str(row["id"]), metric_type, start, end,
                         number_of_samples)


@router.get("/node-pools/{pool}/metrics", response_model=MetricsReply,
            response_model_exclude={"error"},
            responses=errors(400, 401, 403, 404, 422, 503))
async def node_pool_metrics(pool: str, _: Caller, service: Submission,
                            start: datetime, end: datetime,
                            metric_type: MetricTypes = None,
                            number_of_samples: Samples = 20) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await repo.get_node_pool(conn, pool)
    if row is None:
        raise field_error(404, "nodePoolName", f"no node pool {pool}")
    return await _series(service, "nodepool", row["name"], metric_type, start, end,
                         number_of_samples)
