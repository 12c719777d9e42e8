"""Routes: node pools, departments and projects. Every change is published (transactional
outbox) as the unit's whole current state on fairway.org.*, for the scheduler and policy."""

import logging
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
from fastapi import APIRouter, Response
from pydantic import ValidationError

from fairway_contracts import subjects
from fairway_contracts.events import (
    DepartmentChanged,
    NodePoolChanged,
    NodeTypes,
    PoolResources,
    ProjectChanged,
    SchedulingRules,
)
from fairway_store import add_to_outbox
from fairway_submission import repository as repo
from fairway_submission.access import Grants, Perm
from fairway_submission.errors import ApiError, field_error
from fairway_submission.organisation import (
    DepartmentIn,
    NodePoolIn,
    NodePoolUpdate,
    OrgUnitUpdate,
    ProjectIn,
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
from fairway_submission.scheduling import fair_share, pools_with_status
from fairway_submission.workload_specs import requested_gpus

if TYPE_CHECKING:
    from fairway_submission.api import Context

log = logging.getLogger("fairway.submission.org")


# events ------------------------------------------------------------------------------------

def _rules(row: Any) -> tuple[SchedulingRules | None, NodeTypes | None]:
    rules, node_types = row["scheduling_rules"], row.get("node_types")
    try:
        return (SchedulingRules.model_validate(rules) if rules else None,
                NodeTypes.model_validate(node_types) if node_types else None)
    except ValidationError:
        # Stored before the API checked them (free-form then): publish no rules rather than
        # fail every publication of the unit.
        log.warning("ignoring invalid scheduling rules of %s", row["name"])
        return None, None


def _resources(rows: list[dict[str, Any]]) -> list[PoolResources]:
    return [PoolResources(node_pool=r["nodePool"]["name"], gpu=r["gpu"], cpu=r["cpu"],
                          memory=r["memory"]) for r in rows]


async def publish_project(conn: asyncpg.Connection, row: Any, *, deleted: bool = False) -> None:
    change = f"project:{row['id']}:{uuid.uuid4().hex}"
    rules, node_types = _rules(row)
    await add_to_outbox(conn, subjects.org_project(str(row["id"])), ProjectChanged(
        event_id=change, project_id=str(row["id"]), name=row["name"],
        department_id=str(row["department_id"]), deleted=deleted,
        resources=_resources(row["resources"]),
        default_node_pools=row["default_node_pools"], scheduling_rules=rules,
        node_types=node_types), msg_id=change)


async def publish_department(conn: asyncpg.Connection, row: Any, *, deleted: bool = False
                             ) -> None:
    change = f"department:{row['id']}:{uuid.uuid4().hex}"
    rules, node_types = _rules(row)
    await add_to_outbox(conn, subjects.org_department(str(row["id"])), DepartmentChanged(
        event_id=change, department_id=str(row["id"]), name=row["name"], deleted=deleted,
        resources=_resources(row["resources"]),
        default_node_pools=row["default_node_pools"], scheduling_rules=rules,
        node_types=node_types), msg_id=change)


async def publish_node_pool(conn: asyncpg.Connection, row: Any, *, deleted: bool = False
                            ) -> None:
    change = f"nodepool:{row['name']}:{uuid.uuid4().hex}"
    spec = row["spec"] or {}
    placement = spec.get("placementStrategy") or {}
    await add_to_outbox(conn, subjects.org_node_pool(row["name"]), NodePoolChanged(
        event_id=change, name=row["name"], label_key=spec.get("labelKey"),
        label_value=spec.get("labelValue"),
        gpu_placement_strategy=placement.get("gpu", "binpack"),
        cpu_placement_strategy=placement.get("cpu", "binpack"),
        min_guaranteed_runtime=spec.get("minGuaranteedRuntime"), deleted=deleted), msg_id=change)


async def publish_everything(conn: asyncpg.Connection) -> None:
    for pool in await repo.list_node_pools(conn):
        await publish_node_pool(conn, pool)
    for department in await repo.list_departments(conn):
        await publish_department(conn, department)
    for project in await repo.list_projects(conn):
        await publish_project(conn, project)


# views -------------------------------------------------------------------------------------

def _node_pool_out(row: Any) -> dict[str, Any]:
    spec = row["spec"] or {}
    return {"id": str(row["id"]), "name": row["name"], "labelKey": spec.get("labelKey"),
            "labelValue": spec.get("labelValue"),
            "placementStrategy": spec.get("placementStrategy") or {"gpu": "binpack",
                                                                   "cpu": "binpack"},
            "minGuaranteedRuntime": spec.get("minGuaranteedRuntime"),
            "gpuResourceOptimization": spec.get("gpuResourceOptimization") or {},
            "createdAt": row["created_at"].isoformat(),
            "updatedAt": row["updated_at"].isoformat()}


def _zero() -> dict[str, float]:
    return {"gpu": 0, "cpu": 0, "memory": 0}


def _status(pools: list[str], usage: dict[str, dict[str, dict[str, float]]], kind: str,
            name: str) -> dict[str, Any]:
    """Per pool: allocated and requested from the workload view (GPUs); the fair share as the
    scheduler last published it for the queue."""
    out = []
    for pool in pools:
        seen = usage.get(pool, {})
        out.append({"nodePool": {"name": pool},
                    "allocated": seen.get("allocated", _zero()),
                    "allocatedNonPreemptible": seen.get("allocatedNonPreemptible", _zero()),
                    "requested": seen.get("requested", _zero()),
                    "fairShare": fair_share(kind, name, pool)})
    return {"nodePoolResources": out}


async def _usage(conn: asyncpg.Connection) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """project id → pool → allocated / allocatedNonPreemptible / requested GPUs."""
    out: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for row in await repo.project_usage(conn):
        spec = row["effective_spec"] or {}
        pool = (spec.get("nodePools") or ["default"])[0]
        per_pod = requested_gpus(spec)
        bound = sum(1 for p in row["pods"] or [] if p.get("node"))
        entry = out.setdefault(row["project_id"], {}).setdefault(
            pool, {"allocated": _zero(), "allocatedNonPreemptible": _zero(),
                   "requested": _zero()})
        entry["requested"]["gpu"] += per_pod * spec.get("pods", 1)
        entry["allocated"]["gpu"] += per_pod * bound
        if not spec.get("preemptible"):
            entry["allocatedNonPreemptible"]["gpu"] += per_pod * bound
    return out


def _unit_out(row: Any, kind: str, usage: dict[str, Any]) -> dict[str, Any]:
    pools = [r["nodePool"]["name"] for r in row["resources"]]
    for pool in [*usage, *pools_with_status(kind, row["name"])]:
        if pool not in pools:
            pools.append(pool)
    out = {"id": str(row["id"]), "name": row["name"], "resources": row["resources"],
           "defaultNodePools": row["default_node_pools"],
           "schedulingRules": row["scheduling_rules"],
           "nodeTypes": row.get("node_types"),
           "createdAt": row["created_at"].isoformat(),
           "updatedAt": row["updated_at"].isoformat(),
           "status": _status(pools, usage, kind, row["name"])}
    if kind == "project":
        out["parentId"] = str(row["department_id"])
    return out


def _sum_usage(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for usage in parts:
        for pool, kinds in usage.items():
            t = total.setdefault(pool, {"allocated": _zero(), "allocatedNonPreemptible": _zero(),
                                        "requested": _zero()})
            for k, values in kinds.items():
                for r, v in values.items():
                    t[k][r] += v
    return total


def register(router: APIRouter, ctx: "Context", Caller: Any) -> None:
    # node pools ------------------------------------------------------------------------------
    @router.get("/node-pools", tags=["organisation"])
    async def list_node_pools(_: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_node_pools(conn)
        return {"nodePools": [_node_pool_out(r) for r in rows], "totalCount": len(rows)}

    @router.get("/node-pools/{pool_id}", tags=["organisation"])
    async def get_node_pool(pool_id: str, _: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await repo.get_node_pool(conn, pool_id)
        if row is None:
            raise field_error(404, "nodePoolId", f"no node pool {pool_id}")
        return _node_pool_out(row)

    @router.post("/node-pools", status_code=201, tags=["organisation"])
    async def create_node_pool(body: NodePoolIn, caller: Caller) -> dict[str, Any]:
        caller.require_cluster()
        spec = body.model_dump(mode="json", by_alias=True, exclude={"name"})
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.insert_node_pool(conn, body.name, spec)
            if row is None:
                raise field_error(409, "name", f"node pool {body.name!r} already exists")
            await publish_node_pool(conn, row)
        return _node_pool_out(row)

    @router.put("/node-pools/{pool_id}", tags=["organisation"])
    @router.patch("/node-pools/{pool_id}", tags=["organisation"], include_in_schema=False)
    async def update_node_pool(pool_id: str, body: NodePoolUpdate, caller: Caller
                               ) -> dict[str, Any]:
        caller.require_cluster()
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await repo.get_node_pool(conn, pool_id)
            if row is None:
                raise field_error(404, "nodePoolId", f"no node pool {pool_id}")
            spec = dict(row["spec"] or {})
            spec.update(body.model_dump(mode="json", by_alias=True, exclude_unset=True))
            row = await repo.update_node_pool(conn, row["id"], spec)
            await publish_node_pool(conn, row)
        return _node_pool_out(row)

    @router.delete("/node-pools/{pool_id}", status_code=204, tags=["organisation"])
    async def delete_node_pool(pool_id: str, caller: Caller) -> Response:
        caller.require_cluster()
        async with ctx.pool.acquire() as conn, conn.transaction():
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

    # departments -----------------------------------------------------------------------------
    @router.get("/org-unit/departments", tags=["organisation"])
    async def list_departments(caller: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_departments(conn)
            usage = await _usage(conn)
        visible = [r for r in rows
                   if Perm.ORG_VIEW in caller.perms_at(department_id=str(r["id"]))]
        items = [_unit_out(r, "department", _department_usage(caller, r, usage))
                 for r in visible]
        return {"departments": items, "totalCount": len(items)}

    @router.get("/org-unit/departments/{department_id}", tags=["organisation"])
    async def get_department(department_id: str, caller: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await _department(conn, caller, department_id, Perm.ORG_VIEW)
            usage = await _usage(conn)
        return _unit_out(row, "department", _department_usage(caller, row, usage))

    @router.post("/org-unit/departments", status_code=201, tags=["organisation"])
    async def create_department(body: DepartmentIn, caller: Caller) -> dict[str, Any]:
        if Perm.ORG_EDIT not in caller.at_cluster():
            raise ApiError(403, f"{caller.subject} may not create departments")
        async with ctx.pool.acquire() as conn, conn.transaction():
            pools = await repo.node_pool_names(conn)
            _refuse(check_resources(body.resources, pools)
                    + check_default_pools(body.default_node_pools, pools))
            row = await repo.insert_department(conn, body.name, normalise(body.resources),
                                               body.default_node_pools,
                                               stored_rules(body.scheduling_rules),
                                               stored_node_types(body.node_types))
            if row is None:
                raise field_error(409, "name", f"department {body.name!r} already exists")
            await publish_department(conn, row)
        return _unit_out(row, "department", {})

    @router.put("/org-unit/departments/{department_id}", tags=["organisation"])
    @router.patch("/org-unit/departments/{department_id}", tags=["organisation"],
                  include_in_schema=False)
    async def update_department(department_id: str, body: OrgUnitUpdate, caller: Caller
                                ) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await _department(conn, caller, department_id, Perm.ORG_EDIT)
            changes = await _changes(conn, body)
            if "resources" in changes and Perm.ORG_EDIT not in caller.at_cluster():
                raise ApiError(403, f"{caller.subject} may not change a department's quota")
            if "resources" in changes and not ctx.settings.allow_department_oversubscription:
                projects = [p["resources"] for p in await repo.projects_in(conn, row["id"])]
                _refuse(check_department_covers(changes["resources"], projects), 409)
            row = await repo.update_org_unit(conn, "departments", row["id"], changes)
            await publish_department(conn, row)
        return _unit_out(row, "department", {})

    @router.delete("/org-unit/departments/{department_id}", status_code=204,
                   tags=["organisation"])
    async def delete_department(department_id: str, caller: Caller) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
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

    # projects --------------------------------------------------------------------------------
    @router.get("/org-unit/projects", tags=["organisation"])
    async def list_projects(caller: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            rows = await repo.list_projects(conn)
            usage = await _usage(conn)
        items = [_unit_out(r, "project", usage.get(r["id"], {})) for r in rows
                 if Perm.ORG_VIEW in caller.perms_at(project_id=str(r["id"]))]
        return {"projects": items, "next": None, "totalCount": len(items)}

    @router.get("/org-unit/projects/{project_id}", tags=["organisation"])
    async def get_project(project_id: str, caller: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await _project(conn, caller, project_id, Perm.ORG_VIEW)
            usage = await _usage(conn)
        return _unit_out(row, "project", usage.get(row["id"], {}))

    @router.post("/org-unit/projects", status_code=201, tags=["organisation"])
    async def create_project(body: ProjectIn, caller: Caller) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
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
            _refuse(check_resources(body.resources, pools)
                    + check_default_pools(body.default_node_pools, pools))
            resources = normalise(body.resources)
            rules, node_types = stored_rules(body.scheduling_rules), stored_node_types(
                body.node_types)
            _refuse(check_rules_tighten(rules, department)
                    + check_node_types_within(node_types, department))
            if not ctx.settings.allow_department_oversubscription:
                siblings = [p["resources"] for p in await repo.projects_in(conn, department["id"])]
                _refuse(check_department_fits(department, siblings, resources), 409)
            row = await repo.insert_project(conn, body.name, department["id"], resources,
                                            body.default_node_pools, rules, node_types)
            if row is None:
                raise field_error(409, "name", f"project {body.name!r} already exists")
            await publish_project(conn, row)
        return _unit_out(row, "project", {})

    @router.put("/org-unit/projects/{project_id}", tags=["organisation"])
    @router.patch("/org-unit/projects/{project_id}", tags=["organisation"],
                  include_in_schema=False)
    async def update_project(project_id: str, body: OrgUnitUpdate, caller: Caller
                             ) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await _project(conn, caller, project_id, Perm.ORG_EDIT)
            changes = await _changes(conn, body)
            if "scheduling_rules" in changes or "node_types" in changes:
                department = await repo.get_department(conn, str(row["department_id"]))
                _refuse(check_rules_tighten(changes.get("scheduling_rules"), department)
                        + check_node_types_within(changes.get("node_types"), department))
            if "resources" in changes and not ctx.settings.allow_department_oversubscription:
                department = await repo.get_department(conn, str(row["department_id"]))
                siblings = [p["resources"] for p in await repo.projects_in(conn, department["id"])
                            if p["id"] != row["id"]]
                _refuse(check_department_fits(department, siblings, changes["resources"]), 409)
            row = await repo.update_org_unit(conn, "projects", row["id"], changes)
            await publish_project(conn, row)
        return _unit_out(row, "project", {})

    @router.delete("/org-unit/projects/{project_id}", status_code=204, tags=["organisation"])
    async def delete_project(project_id: str, caller: Caller) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await _project(conn, caller, project_id, Perm.ORG_VIEW)
            caller.require(Perm.ORG_EDIT, what=f"department {row['department_id']}",
                           department_id=str(row["department_id"]))
            if await repo.project_has_workloads(conn, row["id"]):
                raise field_error(409, "projectId",
                                  f"project {row['name']} still has workloads; delete them first")
            await repo.delete_project(conn, row["id"])
            await publish_project(conn, row, deleted=True)
        return Response(status_code=204)


def _refuse(problems: list[dict[str, str]], code: int = 422) -> None:
    if problems:
        raise ApiError(code, "; ".join(f"{p['field']}: {p['reason']}" for p in problems[:5]),
                       problems)


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
    _refuse(problems)
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


def _department_usage(caller: Grants, row: Any, usage: dict[int, Any]) -> dict[str, Any]:
    projects = [int(p) for p, d in caller.departments.items() if d == str(row["id"])]
    return _sum_usage([usage[p] for p in projects if p in usage])
