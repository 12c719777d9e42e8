"""Routes: node pools, departments and projects. Every change is published with the unit's
whole state (see `events`); each unit's status per node pool is the scheduler's."""

import logging
from typing import Any

import asyncpg
from fastapi import APIRouter, Response

from fairway_submission import repository as repo
from fairway_submission.core.access import Grants, Perm
from fairway_submission.core.errors import ApiError, field_error, refuse
from fairway_submission.core.queues import unit_status
from fairway_submission.core.swap import swap_problems
from fairway_submission.dependencies import Caller, Submission
from fairway_submission.models import errors
from fairway_submission.org.checks import (
    check_default_pools,
    check_department_covers,
    check_department_fits,
    check_node_types_within,
    check_resources,
    check_rules_tighten,
    normalise,
    stored_node_types,
    stored_rules,
)
from fairway_submission.org.events import publish_department, publish_node_pool, publish_project
from fairway_submission.org.models import (
    DepartmentIn,
    DepartmentList,
    DepartmentOut,
    NodePoolIn,
    NodePoolList,
    NodePoolOut,
    NodePoolUpdate,
    OrgUnitUpdate,
    ProjectIn,
    ProjectList,
    ProjectOut,
)

log = logging.getLogger("fairway.submission.org")

router = APIRouter(prefix="/api/v1", tags=["organisation"])

def _node_pool_out(row: Any) -> dict[str, Any]:
    spec = row["spec"] or {}
    return {"id": str(row["id"]), "name": row["name"], "labelKey": spec.get("labelKey"),
            "labelValue": spec.get("labelValue"),
            "placementStrategy": spec.get("placementStrategy") or {"gpu": "binpack",
                                                                   "cpu": "binpack"},
            "minGuaranteedRuntime": spec.get("minGuaranteedRuntime"),
            "gpuResourceOptimization": spec.get("gpuResourceOptimization") or {},
            "schedulingConfiguration": spec.get("schedulingConfiguration"),
            "networkTopology": spec.get("networkTopology"),
            "createdAt": row["created_at"].isoformat(),
            "updatedAt": row["updated_at"].isoformat()}


Statuses = dict[str, dict[str, Any]]  # unit name -> node pool -> stored queue status


def _unit_out(row: Any, kind: str, statuses: Statuses) -> dict[str, Any]:
    configured = [r["nodePool"]["name"] for r in row["resources"]]
    out = {"id": str(row["id"]), "name": row["name"], "resources": row["resources"],
           "defaultNodePools": row["default_node_pools"],
           "schedulingRules": row["scheduling_rules"],
           "nodeTypes": row.get("node_types"),
           "createdAt": row["created_at"].isoformat(),
           "updatedAt": row["updated_at"].isoformat(),
           "status": unit_status(configured, statuses.get(row["name"], {}))}
    if kind == "project":
        out["parentId"] = str(row["department_id"])
    return out


@router.get("/node-pools", response_model=NodePoolList, responses=errors(401, 503))
async def list_node_pools(_: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        rows = await repo.list_node_pools(conn)
    return {"nodePools": [_node_pool_out(r) for r in rows], "totalCount": len(rows)}


@router.get("/node-pools/{pool_id}", response_model=NodePoolOut,
            responses=errors(401, 404, 422, 503))
async def get_node_pool(pool_id: str, _: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await repo.get_node_pool(conn, pool_id)
    if row is None:
        raise field_error(404, "nodePoolId", f"no node pool {pool_id}")
    return _node_pool_out(row)


async def _check_swap(service: Any, pool: str, spec: dict[str, Any]) -> None:
    """The pool's GPU memory swap settings against its nodes' GPUs (422 naming the field)."""
    optimization = spec.get("gpuResourceOptimization") or {}
    if not optimization.get("swapEnabled") and not optimization.get(
            "reservedGpuMemoryForSwapOperations"):
        return
    inventory = await service.peers.read_inventory()
    devices = [(n.name, n.gpu_memory_mib) for n in inventory
               if n.node_pool == pool and n.gpu_memory_mib and not n.deleted]
    for field, reason in swap_problems(optimization, devices)[:1]:
        raise field_error(422, field, reason)


@router.post("/node-pools", status_code=201, response_model=NodePoolOut,
             responses=errors(400, 401, 403, 409, 413, 422, 503))
async def create_node_pool(body: NodePoolIn, caller: Caller, service: Submission
                           ) -> dict[str, Any]:
    caller.require_cluster()
    spec = body.model_dump(mode="json", by_alias=True, exclude={"name"})
    await _check_swap(service, body.name, spec)
    async with service.pool.acquire() as conn, conn.transaction():
        row = await repo.insert_node_pool(conn, body.name, spec)
        if row is None:
            raise field_error(409, "name", f"node pool {body.name!r} already exists")
        await publish_node_pool(conn, row)
    return _node_pool_out(row)


@router.put("/node-pools/{pool_id}", response_model=NodePoolOut,
            responses=errors(400, 401, 403, 404, 413, 422, 503))
@router.patch("/node-pools/{pool_id}", include_in_schema=False)
async def update_node_pool(pool_id: str, body: NodePoolUpdate, caller: Caller,
                           service: Submission) -> dict[str, Any]:
    caller.require_cluster()
    async with service.pool.acquire() as conn, conn.transaction():
        row = await repo.get_node_pool(conn, pool_id)
        if row is None:
            raise field_error(404, "nodePoolId", f"no node pool {pool_id}")
        spec = dict(row["spec"] or {})
        spec.update(body.model_dump(mode="json", by_alias=True, exclude_unset=True))
        await _check_swap(service, row["name"], spec)
        row = await repo.update_node_pool(conn, row["id"], spec)
        await publish_node_pool(conn, row)
    return _node_pool_out(row)


@router.delete("/node-pools/{pool_id}", status_code=204,
               responses=errors(401, 403, 404, 409, 422, 503))
async def delete_node_pool(pool_id: str, caller: Caller, service: Submission) -> Response:
    caller.require_cluster()
    async with service.pool.acquire() as conn, conn.transaction():
        row = await repo.get_node_pool(conn, pool_id)
        if row is None:
            raise field_error(404, "nodePoolId", f"no node pool {pool_id}")
        if row["name"] == "default":
            raise field_error(409, "nodePoolId", "the default node pool always exists")
        users = await repo.org_units_using_pool(conn, row["name"])
        if users:
            raise field_error(409, "nodePoolId",
                              f"node pool {row['name']} is used by {', '.join(users)}")
        await repo.delete_node_pool(conn, row["id"])
        await publish_node_pool(conn, row, deleted=True)
    return Response(status_code=204)


@router.get("/org-unit/departments", response_model=DepartmentList,
            response_model_exclude_unset=True, responses=errors(401, 503))
async def list_departments(caller: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        rows = await repo.list_departments(conn)
        statuses = await repo.queue_statuses(conn, "department")
    items = [_unit_out(r, "department", statuses) for r in rows
             if Perm.ORG_VIEW in caller.perms_at(department_id=str(r["id"]))]
    return {"departments": items, "totalCount": len(items)}


@router.get("/org-unit/departments/{department_id}", response_model=DepartmentOut,
            response_model_exclude_unset=True, responses=errors(401, 403, 404, 422, 503))
async def get_department(department_id: str, caller: Caller, service: Submission
                         ) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await _department(conn, caller, department_id, Perm.ORG_VIEW)
        statuses = await repo.queue_statuses(conn, "department", row["name"])
    return _unit_out(row, "department", statuses)


@router.post("/org-unit/departments", status_code=201, response_model=DepartmentOut,
             response_model_exclude_unset=True,
             responses=errors(400, 401, 403, 409, 413, 422, 503))
async def create_department(body: DepartmentIn, caller: Caller, service: Submission
                            ) -> dict[str, Any]:
    if Perm.ORG_EDIT not in caller.at_cluster():
        raise ApiError(403, f"{caller.subject} may not create departments")
    async with service.pool.acquire() as conn, conn.transaction():
        pools = await repo.node_pool_names(conn)
        refuse(check_resources(body.resources, pools)
               + check_default_pools(body.default_node_pools, pools))
        row = await repo.insert_department(conn, body.name, normalise(body.resources),
                                           body.default_node_pools,
                                           stored_rules(body.scheduling_rules),
                                           stored_node_types(body.node_types))
        if row is None:
            raise field_error(409, "name", f"department {body.name!r} already exists")
        await publish_department(conn, row)
        statuses = await repo.queue_statuses(conn, "department", row["name"])
    return _unit_out(row, "department", statuses)


@router.put("/org-unit/departments/{department_id}", response_model=DepartmentOut,
            response_model_exclude_unset=True,
            responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
@router.patch("/org-unit/departments/{department_id}", include_in_schema=False)
async def update_department(department_id: str, body: OrgUnitUpdate, caller: Caller,
                            service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn, conn.transaction():
        row = await _department(conn, caller, department_id, Perm.ORG_EDIT)
        changes = await _changes(conn, body)
        if "resources" in changes and Perm.ORG_EDIT not in caller.at_cluster():
            raise ApiError(403, f"{caller.subject} may not change a department's quota")
        if "resources" in changes and not service.settings.allow_department_oversubscription:
            projects = [p["resources"] for p in await repo.projects_in(conn, row["id"])]
            refuse(check_department_covers(changes["resources"], projects), 409)
        row = await repo.update_org_unit(conn, "departments", row["id"], changes)
        await publish_department(conn, row)
        statuses = await repo.queue_statuses(conn, "department", row["name"])
    return _unit_out(row, "department", statuses)


@router.delete("/org-unit/departments/{department_id}", status_code=204,
               responses=errors(401, 403, 404, 409, 422, 503))
async def delete_department(department_id: str, caller: Caller, service: Submission
                            ) -> Response:
    async with service.pool.acquire() as conn, conn.transaction():
        row = await _department(conn, caller, department_id, Perm.ORG_VIEW)
        if Perm.ORG_EDIT not in caller.at_cluster():
            raise ApiError(403, f"{caller.subject} may not delete departments")
        if row["name"] == "default":
            raise field_error(409, "departmentId", "the default department always exists")
        projects = await repo.projects_in(conn, row["id"])
        if projects:
            raise field_error(409, "departmentId", "the department still has projects: "
                              + ", ".join(p["name"] for p in projects))
        await repo.delete_department(conn, row["id"])
        await publish_department(conn, row, deleted=True)
    return Response(status_code=204)


@router.get("/org-unit/projects", response_model=ProjectList, response_model_exclude_unset=True,
            responses=errors(401, 503))
async def list_projects(caller: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        rows = await repo.list_projects(conn)
        statuses = await repo.queue_statuses(conn, "project")
    items = [_unit_out(r, "project", statuses) for r in rows
             if Perm.ORG_VIEW in caller.perms_at(project_id=str(r["id"]))]
    return {"projects": items, "next": None, "totalCount": len(items)}


@router.get("/org-unit/projects/{project_id}", response_model=ProjectOut,
            response_model_exclude_unset=True, responses=errors(401, 403, 404, 422, 503))
async def get_project(project_id: str, caller: Caller, service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn:
        row = await _project(conn, caller, project_id, Perm.ORG_VIEW)
        statuses = await repo.queue_statuses(conn, "project", row["name"])
    return _unit_out(row, "project", statuses)


@router.post("/org-unit/projects", status_code=201, response_model=ProjectOut,
             response_model_exclude_unset=True,
             responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
async def create_project(body: ProjectIn, caller: Caller, service: Submission
                         ) -> dict[str, Any]:
    async with service.pool.acquire() as conn, conn.transaction():
        if body.parent_id is None:
            department = await repo.default_department(conn)
        else:
            department = await repo.get_department(conn, body.parent_id)
            if department is None:
                raise field_error(404, "parentId",
                                  f"department {body.parent_id} does not exist")
        caller.require(Perm.ORG_EDIT, what=f"department {department['id']}",
                       department_id=str(department["id"]))
        pools = await repo.node_pool_names(conn)
        refuse(check_resources(body.resources, pools)
               + check_default_pools(body.default_node_pools, pools))
        resources = normalise(body.resources)
        rules, node_types = stored_rules(body.scheduling_rules), stored_node_types(
            body.node_types)
        refuse(check_rules_tighten(rules, department)
               + check_node_types_within(node_types, department))
        if not service.settings.allow_department_oversubscription:
            siblings = [p["resources"] for p in await repo.projects_in(conn, department["id"])]
            refuse(check_department_fits(department, siblings, resources), 409)
        row = await repo.insert_project(conn, body.name, department["id"], resources,
                                        body.default_node_pools, rules, node_types)
        if row is None:
            raise field_error(409, "name", f"project {body.name!r} already exists")
        await publish_project(conn, row)
        statuses = await repo.queue_statuses(conn, "project", row["name"])
    return _unit_out(row, "project", statuses)


@router.put("/org-unit/projects/{project_id}", response_model=ProjectOut,
            response_model_exclude_unset=True,
            responses=errors(400, 401, 403, 404, 409, 413, 422, 503))
@router.patch("/org-unit/projects/{project_id}", include_in_schema=False)
async def update_project(project_id: str, body: OrgUnitUpdate, caller: Caller,
                         service: Submission) -> dict[str, Any]:
    async with service.pool.acquire() as conn, conn.transaction():
        row = await _project(conn, caller, project_id, Perm.ORG_EDIT)
        changes = await _changes(conn, body)
        if "scheduling_rules" in changes or "node_types" in changes:
            department = await repo.get_department(conn, str(row["department_id"]))
            refuse(check_rules_tighten(changes.get("scheduling_rules"), department)
                   + check_node_types_within(changes.get("node_types"), department))
        if "resources" in changes and not service.settings.allow_department_oversubscription:
            department = await repo.get_department(conn, str(row["department_id"]))
            siblings = [p["resources"] for p in await repo.projects_in(conn, department["id"])
                        if p["id"] != row["id"]]
            refuse(check_department_fits(department, siblings, changes["resources"]), 409)
        row = await repo.update_org_unit(conn, "projects", row["id"], changes)
        await publish_project(conn, row)
        statuses = await repo.queue_statuses(conn, "project", row["name"])
    return _unit_out(row, "project", statuses)


@router.delete("/org-unit/projects/{project_id}", status_code=204,
               responses=errors(401, 403, 404, 409, 422, 503))
async def delete_project(project_id: str, caller: Caller, service: Submission) -> Response:
    async with service.pool.acquire() as conn, conn.transaction():
        row = await _project(conn, caller, project_id, Perm.ORG_VIEW)
        caller.require(Perm.ORG_EDIT, what=f"department {row['department_id']}",
                       department_id=str(row["department_id"]))
        if await repo.project_has_workloads(conn, row["id"]):
            raise field_error(409, "projectId",
                              f"project {row['name']} still has workloads; delete them first")
        await repo.delete_project(conn, row["id"])
        await publish_project(conn, row, deleted=True)
    return Response(status_code=204)


async def _changes(conn: asyncpg.Connection, body: OrgUnitUpdate) -> dict[str, Any]:
    pools = await repo.node_pool_names(conn)
    changes: dict[str, Any] = {}
    problems = []
    if body.resources is not None:
        problems += check_resources(body.resources, pools)
        changes["resources"] = normalise(body.resources)
    if body.default_node_pools is not None:
        problems += check_default_pools(body.default_node_pools, pools)
        changes["default_node_pools"] = body.default_node_pools
    # Sent as null: the limits (or node types) are removed; left out: unchanged.
    if "scheduling_rules" in body.model_fields_set:
        changes["scheduling_rules"] = stored_rules(body.scheduling_rules)
    if "node_types" in body.model_fields_set:
        changes["node_types"] = stored_node_types(body.node_types)
    refuse(problems)
    return changes


async def _department(conn: asyncpg.Connection, caller: Grants, department_id: str,
                      perm: Perm) -> Any:
    row = await repo.get_department(conn, department_id)
    if row is None:
        raise field_error(404, "departmentId", f"department {department_id} does not exist")
    caller.require(perm, what=f"department {department_id}", department_id=str(row["id"]))
    return row


async def _project(conn: asyncpg.Connection, caller: Grants, project_id: str, perm: Perm
                   ) -> Any:
    row = await repo.get_project(conn, project_id)
    if row is None:
        raise field_error(404, "projectId", f"project {project_id} does not exist")
    caller.require(perm, what=f"project {project_id}", project_id=str(row["id"]))
    return row
