"""The organisation's changes on the bus: every change is published (transactional outbox) as
the unit's whole current state on fairway.org.*, for the scheduler and policy."""

import logging
import uuid
from typing import Any

import asyncpg
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
from fairway_contracts.quantities import memory_mib
from fairway_store import add_to_outbox
from fairway_submission import repository as repo
from fairway_submission.org.models import topology_levels

log = logging.getLogger("fairway.submission.org")


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
        node_types=node_types, created_at=row.get("created_at")), msg_id=change)


async def publish_department(conn: asyncpg.Connection, row: Any, *, deleted: bool = False
                             ) -> None:
    change = f"department:{row['id']}:{uuid.uuid4().hex}"
    rules, node_types = _rules(row)
    await add_to_outbox(conn, subjects.org_department(str(row["id"])), DepartmentChanged(
        event_id=change, department_id=str(row["id"]), name=row["name"], deleted=deleted,
        resources=_resources(row["resources"]),
        default_node_pools=row["default_node_pools"], scheduling_rules=rules,
        node_types=node_types, created_at=row.get("created_at")), msg_id=change)


async def publish_node_pool(conn: asyncpg.Connection, row: Any, *, deleted: bool = False
                            ) -> None:
    change = f"nodepool:{row['name']}:{uuid.uuid4().hex}"
    spec = row["spec"] or {}
    placement = spec.get("placementStrategy") or {}
    optimization = spec.get("gpuResourceOptimization") or {}
    await add_to_outbox(conn, subjects.org_node_pool(row["name"]), NodePoolChanged(
        event_id=change, name=row["name"], label_key=spec.get("labelKey"),
        label_value=spec.get("labelValue"),
        gpu_placement_strategy=placement.get("gpu", "binpack"),
        cpu_placement_strategy=placement.get("cpu", "binpack"),
        min_guaranteed_runtime=spec.get("minGuaranteedRuntime"),
        node_level_scheduler_enabled=bool(optimization.get("nodeLevelSchedulerEnabled")),
        swap_enabled=bool(optimization.get("swapEnabled")),
        cpu_swap_memory_mib=memory_mib(optimization.get("cpuSwapMemorySize")),
        reserved_gpu_memory_for_swap_mib=memory_mib(
            optimization.get("reservedGpuMemoryForSwapOperations")),
        time_aware_fairness=(spec.get("schedulingConfiguration") or {}).get("timeAwareFairness"),
        topology_levels=topology_levels(spec), deleted=deleted), msg_id=change)


async def publish_everything(conn: asyncpg.Connection) -> None:
    for pool in await repo.list_node_pools(conn):
        await publish_node_pool(conn, pool)
    for department in await repo.list_departments(conn):
        await publish_department(conn, department)
    for project in await repo.list_projects(conn):
        await publish_project(conn, project)
