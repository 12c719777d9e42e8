"""Routes: the four workload types' submission, the list, one workload, its pods, their logs
and its phase history, and the actions (suspend, resume, delete, batch)."""

import logging
import secrets
import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from fairway_contracts import WorkloadType, subjects
from fairway_contracts.events import (
    PolicyEvaluateReply,
    PolicyEvaluateRequest,
    WorkloadAction,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import TYPE_OF_PLURAL, utcnow
from fairway_store import add_to_outbox, outbox_row
from fairway_submission import repository as repo
from fairway_submission.core.access import Grants, Perm
from fairway_submission.core.errors import ApiError, field_error, refuse, summary
from fairway_submission.dependencies import Caller, Submission
from fairway_submission.models import errors
from fairway_submission.service import SubmissionService
from fairway_submission.workloads.checks import (
    LIST_FIELDS,
    check_effective,
    check_gpu_memory,
    check_node_type,
    check_spec,
    check_topology,
    parse_filters,
)
from fairway_submission.workloads.logs import LogQuery
from fairway_submission.workloads.models import (
    BatchIn,
    BatchOut,
    DistributedCreate,
    InferenceCreate,
    KubernetesEvents,
    PhaseHistory,
    PodsOut,
    TrainingCreate,
    Workload,
    WorkloadCreate,
    WorkloadList,
    WorkspaceCreate,
)
from fairway_submission.workloads.view import to_workload, workload_json
from fairway_telemetry import workload_context

log = logging.getLogger("fairway.submission.workloads")

router = APIRouter(prefix="/api/v1", tags=["workloads"])

# API action → (WorkloadAction.action, desired phase)
ACTIONS = {"suspend": ("stop", "Stopped"), "resume": ("resume", "Running"),
           "delete": ("delete", "Deleted")}


def with_suffix(name: str) -> str:
    """useGivenNameAsPrefix: the given name plus a short random suffix, still a DNS name."""
    return f"{name[:33]}-{secrets.token_hex(3)}"


@router.post("/workloads/workspaces", status_code=202, response_model=Workload,
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def submit_workspace(body: WorkspaceCreate, caller: Caller, service: Submission
                           ) -> Response:
    return await submit(service, WorkloadType.WORKSPACE, body, caller)


@router.post("/workloads/trainings", status_code=202, response_model=Workload,
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def submit_training(body: TrainingCreate, caller: Caller, service: Submission
                          ) -> Response:
    return await submit(service, WorkloadType.TRAINING, body, caller)


@router.post("/workloads/distributed", status_code=202, response_model=Workload,
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def submit_distributed(body: DistributedCreate, caller: Caller, service: Submission
                             ) -> Response:
    return await submit(service, WorkloadType.DISTRIBUTED, body, caller)


@router.post("/workloads/inferences", status_code=202, response_model=Workload,
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def submit_inference(body: InferenceCreate, caller: Caller, service: Submission
                           ) -> Response:
    return await submit(service, WorkloadType.INFERENCE, body, caller)


@router.get("/workloads", response_model=WorkloadList,
            responses=errors(400, 401, 422, 503))
async def list_workloads(
    caller: Caller,
    service: Submission,
    filter_by: Annotated[str | None, Query(alias="filterBy")] = None,
    sort_by: Annotated[str, Query(alias="sortBy")] = "createdAt",
    sort_order: Annotated[str, Query(alias="sortOrder", pattern="^(asc|desc)$")] = "desc",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    try:
        filters = parse_filters(filter_by)
    except ValueError as exc:
        raise field_error(400, "filterBy", str(exc)) from None
    if sort_by not in LIST_FIELDS:
        raise field_error(400, "sortBy", f"use one of {', '.join(LIST_FIELDS)}")
    scope = visible_scope(caller)
    async with service.pool.acquire() as conn:
        rows, total = await repo.list_workloads(conn, filters, LIST_FIELDS[sort_by],
                                                sort_order == "desc", offset, limit, scope)
    return {"workloads": [to_workload(r) for r in rows], "totalCount": total,
            "next": offset + len(rows) if offset + len(rows) < total else None}


def visible_scope(caller: Grants) -> tuple[list[int], list[int]] | None:
    """The projects whose workloads a list may show the caller (every workload, inferences
    only), as `repo.list_workloads` takes them; None: everything."""
    if Perm.WORKLOAD_VIEW in caller.at_cluster():
        return None
    every, inference = caller.workload_scopes(caller.departments)
    return [int(p) for p in every], [int(p) for p in inference]


@router.get("/workloads/{workload_id}", response_model=Workload,
            responses=errors(401, 404, 422, 503))
async def get_workload(workload_id: str, caller: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await _visible(conn, caller, workload_id)
    return to_workload(row)


@router.get("/workloads/{workload_id}/pods", response_model=PodsOut,
            responses=errors(401, 404, 422, 503))
async def workload_pods(workload_id: str, caller: Caller, service: Submission
                        ) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await _visible(conn, caller, workload_id)
    return {"pods": row["pods"] or []}


# A container name as Kubernetes takes it (a DNS-1123 label).
CONTAINER_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LOG_TEXT = {200: {"description": "The pod's log as text, line by line; with follow=true it "
                                 "comes as it is written and ends when the container ends",
                  "content": {"text/plain": {"schema": {"type": "string"}}}}}


@router.get("/workloads/{workload_id}/pods/{pod}/logs", response_class=StreamingResponse,
            responses={**LOG_TEXT, **errors(400, 401, 404, 409, 422, 503)})
async def pod_logs(
    workload_id: str,
    pod: str,
    caller: Caller,
    service: Submission,
    follow: Annotated[bool, Query(description="keep streaming lines as they are written, "
                                              "until the container ends")] = False,
    tail_lines: Annotated[int | None, Query(alias="tailLines", ge=0, le=1_000_000,
                                            description="only the last N lines")] = None,
    since_seconds: Annotated[int | None, Query(alias="sinceSeconds", ge=1, description=(
        "only the lines written in the last N seconds"))] = None,
    container: Annotated[str | None, Query(max_length=63, pattern=CONTAINER_NAME, description=(
        "the container (Fairway's pods have one, `main`)"))] = None,
    previous: Annotated[bool, Query(description="the log of the container's run before its "
                                                "last restart")] = False,
    timestamps: Annotated[bool, Query(description="prefix each line with the time it was "
                                                  "written (RFC 3339)")] = False,
) -> StreamingResponse:
    """One pod's log, read from Kubernetes and streamed through as it comes (never held
    whole); whoever may see the workload may read it."""
    async with service.pool.acquire() as conn:
        row = await _visible(conn, caller, workload_id)
    names = [p.get("name") for p in row["pods"] or []]
    if pod not in names:
        known = (f"its pods: {', '.join(names)}" if names
                 else f"it has no pods yet: it is {row['phase']}")
        raise field_error(404, "pod", f"pod {pod} is not a pod of workload {workload_id} "
                                      f"({known})")
    namespace = await service.pod_logs.namespace_of(str(row["workload_id"]), pod)
    chunks = await service.pod_logs.open(namespace, pod, LogQuery(
        container=container, follow=follow, previous=previous, timestamps=timestamps,
        tail_lines=tail_lines, since_seconds=since_seconds))
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8",
                             headers={"Cache-Control": "no-cache",
                                      "X-Content-Type-Options": "nosniff"})


@router.get("/workloads/{workload_id}/events", response_model=PhaseHistory,
            responses=errors(401, 404, 422, 503))
async def workload_events(workload_id: str, caller: Caller, service: Submission
                          ) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await _visible(conn, caller, workload_id)
        history = await repo.phase_history(conn, row["workload_id"])
    return {"events": [
        {"sequence": h["sequence"], "from": h["previous_phase"], "to": h["phase"],
         "reason": h["reason"], "message": h["message"], "time": h["time"].isoformat()}
        for h in history]}


@router.get("/workloads/{workload_id}/kubernetes-events", response_model=KubernetesEvents,
            responses=errors(401, 404, 422, 503))
async def workload_kubernetes_events(workload_id: str, caller: Caller, service: Submission
                                     ) -> dict[str, Any]:
    """What Kubernetes recorded about the workload's pods — scheduled, image pulled, started,
    killed, OOM, the node-level scheduler's moves — read from the cluster now (the phase
    history is `/events`); whoever may see the workload may read them."""
    async with service.pool.acquire() as conn:
        row = await _visible(conn, caller, workload_id)
    if not row["pods"]:
        return {"events": []}
    return {"events": await service.pod_logs.events(str(row["workload_id"]))}


@router.post("/workloads/batch", status_code=202, response_model=BatchOut,
             responses=errors(400, 401, 413, 422, 503))
async def batch(body: BatchIn, caller: Caller, service: Submission) -> dict[str, Any]:
    results = []
    for workload_id in dict.fromkeys(body.ids):
        try:
            await act(service, caller, None, workload_id, body.action)
            results.append({"id": workload_id, "code": 202, "message": "accepted"})
        except ApiError as exc:
            results.append({"id": workload_id, "code": exc.code, "message": exc.message})
    return {"results": results}


@router.post("/workloads/{workload_type}/{workload_id}/suspend", status_code=202,
             response_model=Workload, responses=errors(401, 403, 404, 409, 422, 503))
async def suspend(workload_type: str, workload_id: str, caller: Caller,
                  service: Submission) -> dict[str, Any]:
    return await act(service, caller, workload_type, workload_id, "suspend")


@router.post("/workloads/{workload_type}/{workload_id}/resume", status_code=202,
             response_model=Workload, responses=errors(401, 403, 404, 409, 422, 503))
async def resume(workload_type: str, workload_id: str, caller: Caller,
                 service: Submission) -> dict[str, Any]:
    return await act(service, caller, workload_type, workload_id, "resume")


@router.delete("/workloads/{workload_type}/{workload_id}", status_code=202,
               response_model=Workload, responses=errors(401, 403, 404, 409, 422, 503))
async def delete(workload_type: str, workload_id: str, caller: Caller,
                 service: Submission) -> dict[str, Any]:
    return await act(service, caller, workload_type, workload_id, "delete")


async def _visible(conn: asyncpg.Connection, caller: Grants, workload_id: str,
                   perm: Perm = Perm.WORKLOAD_VIEW) -> asyncpg.Record:
    row = await repo.get_workload(conn, workload_id)
    what = f"workload {workload_id}"
    if row is None:
        raise field_error(404, "workloadId", f"{what} does not exist")
    # Seeing comes first: what a caller may not see does not exist for them, whatever else.
    caller.require_workload(Perm.WORKLOAD_VIEW, row["workload_type"], str(row["project_id"]),
                            what=what)
    if perm is not Perm.WORKLOAD_VIEW:
        caller.require_workload(perm, row["workload_type"], str(row["project_id"]), what=what)
    return row


THIRD_PARTY = "thirdParty"  # the type (and path segment) of third-party workloads


async def act(service: SubmissionService, caller: Grants, plural: str | None, workload_id: str,
              action: str) -> dict[str, Any]:
    """Record the desired phase and publish the action; lifecycle carries it out."""
    if plural is not None and plural not in TYPE_OF_PLURAL and plural != THIRD_PARTY:
        raise field_error(404, "type", f"no workload type {plural!r}; use one of "
                                       f"{', '.join(TYPE_OF_PLURAL)}")
    verb, desired = ACTIONS[action]
    async with service.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, caller, workload_id, Perm.WORKLOAD_MANAGE)
        if row["third_party"] and action != "delete":
            owner = row["third_party"]
            raise field_error(409, "workloadId", (
                f"workload {row['name']} is a third-party workload ({owner['kind']} "
                f"{owner['name']} in namespace {owner['namespace']}): Fairway schedules it "
                f"but has no {action} action for it; act on its {owner['kind']} instead"))
        if plural is not None and plural != row["workload_type"] and (
                plural == THIRD_PARTY or TYPE_OF_PLURAL[plural].value != row["workload_type"]):
            raise field_error(404, "workloadId", f"workload {workload_id} is not one of the "
                                                 f"{plural}")
        if row["desired_phase"] == "Deleted":
            raise field_error(409, "workloadId", f"workload {row['name']} is being deleted")
        await repo.set_desired_phase(conn, row["workload_id"], desired)
        event_id = f"action:{verb}:{row['workload_id']}:{uuid.uuid4().hex}"
        # a third-party workload of no project still has a subject (no project is named "_")
        project = row["project"] or "_"
        with workload_context(str(row["workload_id"])):
            await add_to_outbox(
                conn, subjects.workload_action(verb, project, str(row["workload_id"])),
                WorkloadAction(event_id=event_id, workload_id=str(row["workload_id"]),
                               project=project, action=verb,
                               requested_by=caller.subject), msg_id=event_id)
        row = await repo.get_workload(conn, str(row["workload_id"]))
    log.info("%s requested for workload %s", action, workload_id)
    return to_workload(row)


async def submit(service: SubmissionService, workload_type: WorkloadType, body: WorkloadCreate,
                 caller: Grants) -> Response:
    view = await service.project(body.project_id)
    project, department, pools = view.project, view.department, view.node_pools
    what = f"project {body.project_id}"
    if project is None or not caller.roles_at(project_id=str(project["id"])):
        raise field_error(404, "projectId", f"{what} does not exist")
    caller.require_workload(Perm.WORKLOAD_CREATE, workload_type.value, str(project["id"]),
                            what=what)
    problems = check_spec(workload_type, body.spec)
    for i, pool in enumerate(body.spec.node_pools):
        if pool not in pools:
            problems.append({"field": f"spec.nodePools[{i}]",
                             "reason": f"node pool {pool!r} does not exist"})
    refuse(problems, message="invalid workload: ")
    name = with_suffix(body.name) if body.use_given_name_as_prefix else body.name
    submitted = body.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not submitted.get("nodePools") and project["default_node_pools"]:
        submitted["nodePools"] = list(project["default_node_pools"])
    reply = await service.evaluate_policy(PolicyEvaluateRequest(
        workload_type=workload_type, project=project["name"], name=name, spec=submitted,
        project_id=str(project["id"]), department_id=str(project["department_id"])))
    if not reply.ok or reply.effective_spec is None:
        raise _violates_policy(reply)
    effective = reply.effective_spec
    if effective.node_type is None and body.spec.node_type is not None:
        effective = effective.model_copy(update={"node_type": body.spec.node_type})
    # The node type is checked on the effective spec: a policy default counts as picked.
    refused = check_node_type(workload_type.value, effective.node_type, project, department)
    if effective.topology is not None:
        refused += check_topology(effective.topology.required_placement,
                                  effective.topology.preferred_placement,
                                  effective.node_pools, view.topologies)
    effective_json = effective.model_dump(mode="json", by_alias=True)
    refused += check_effective(type(body.spec), effective_json)
    if effective.compute.gpu_request_type == "memory":
        refused += check_gpu_memory(effective.compute, effective.node_pools,
                                    await service.peers.read_inventory())
    if refused:
        raise ApiError(422, "invalid workload: " + summary(refused, None), refused)
    workload_id = uuid.uuid4()
    created_at = utcnow()
    event = WorkloadSubmitted(
        event_id=str(workload_id), workload_id=str(workload_id), name=name,
        project=project["name"], project_id=str(project["id"]), workload_type=workload_type,
        created_at=created_at, created_by=caller.subject, spec=effective)
    with workload_context(str(workload_id)):
        announcement = outbox_row(
            subjects.workload_submitted(project["name"], str(workload_id)), event,
            msg_id=f"submitted:{workload_id}")
        try:
            async with service.pool.acquire() as conn:
                row = await repo.insert_announced_workload(
                    conn, workload_id=workload_id, name=name, project=project,
                    workload_type=workload_type.value, submitted=submitted,
                    effective=effective_json, created_by=caller.subject,
                    created_at=created_at, announcement=announcement)
        except asyncpg.ForeignKeyViolationError:
            # deleted since it was read (the project is remembered for a few seconds)
            raise field_error(404, "projectId", f"{what} does not exist") from None
        if row is None:
            raise field_error(409, "name", f"a workload named {name!r} already exists in "
                                           f"project {project['name']}")
        log.info("accepted %s %s in project %s", workload_type.value, name, project["name"])
    return Response(workload_json(row), status_code=202, media_type="application/json")


def _violates_policy(reply: PolicyEvaluateReply) -> ApiError:
    # A policy rule's refusal also names the value it saw and the scope that set the rule.
    details = [{"field": v.field, "reason": v.message, "rule": v.rule,
                **({"value": v.value, "scope": v.scope} if v.scope else {})}
               for v in reply.violations]
    return ApiError(422, "the workload violates policy: " + summary(details, None), details)
