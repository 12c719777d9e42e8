"""The scheduler's SQL, all of it. Every function runs on the caller's connection, inside the
caller's transaction."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import asyncpg

from fairway_contracts.events import DepartmentChanged, NodePoolChanged, ProjectChanged
from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.core.cluster import PendingInfo, PodStatus, WorkloadRequest, WorkloadStatus

# loading at start -----------------------------------------------------------------------------


async def load_nodes(conn: asyncpg.Connection
                     ) -> list[tuple[core.Node, Mapping[str, str], int]]:
    """(node as reported, its labels, its pod capacity)."""
    rows = await conn.fetch(
        "SELECT name, pool, ready, gpus, gpu_product, gpu_memory_mib, cpu_millis, memory_mib,"
        " labels, max_pods FROM nodes")
    return [(core.Node(**{k: v for k, v in dict(row).items() if k not in ("labels", "max_pods")}),
             row["labels"], row["max_pods"]) for row in rows]


async def load_requests(conn: asyncpg.Connection) -> list[WorkloadRequest]:
    """Requests of workloads that are not over."""
    rows = await conn.fetch(
        "SELECT w.id, w.project, w.priority_class, w.priority, w.preemptible, w.node_pools,"
        " w.pods, w.min_pods, w.gpus_per_pod, w.submitted_at, w.trace_headers, w.project_id,"
        " w.gpu_portion, w.gpu_memory_mib, w.gpu_limit, w.cpu_millis, w.memory_mib, w.node_type,"
        " w.name"
        " FROM workloads w LEFT JOIN workload_status s ON s.workload_id = w.id"
        " WHERE s.finished IS NOT TRUE")
    return [WorkloadRequest(**{**dict(row), "node_pools": tuple(row["node_pools"])})
            for row in rows]


async def load_statuses(conn: asyncpg.Connection) -> list[WorkloadStatus]:
    rows = await conn.fetch(
        "SELECT workload_id, project, sequence, phase, pods, trace_headers"
        " FROM workload_status WHERE NOT finished")
    return [
        WorkloadStatus(
            workload_id=row["workload_id"], project=row["project"], sequence=row["sequence"],
            phase=Phase(row["phase"]), pods=tuple(PodStatus(**pod) for pod in row["pods"]),
            trace_headers=row["trace_headers"],
        )
        for row in rows
    ]


async def load_allocations(conn: asyncpg.Connection) -> list[core.Allocation]:
    rows = await conn.fetch(
        "SELECT workload_id, pod, node, gpu_devices, portion, gpu_memory_mib, cpu_millis,"
        " memory_mib FROM allocations")
    return [core.Allocation(row["workload_id"], row["pod"], row["node"],
                            tuple(row["gpu_devices"]), portion=row["portion"],
                            gpu_memory_mib=row["gpu_memory_mib"], cpu_millis=row["cpu_millis"],
                            memory_mib=row["memory_mib"]) for row in rows]


async def load_pending(conn: asyncpg.Connection
                       ) -> list[tuple[core.PendingReason, PendingInfo]]:
    rows = await conn.fetch(
        "SELECT id, project, pending_code, pending_message, pending_since, pending_version,"
        " pending_unschedulable FROM workloads WHERE pending_code IS NOT NULL")
    return [(core.PendingReason(row["id"], core.PendingCode(row["pending_code"]),
                                row["pending_message"], row["pending_unschedulable"]),
             PendingInfo(row["project"], row["pending_since"], row["pending_version"]))
            for row in rows]


async def load_projects(conn: asyncpg.Connection) -> list[ProjectChanged]:
    rows = await conn.fetch(
        "SELECT id, name, department_id, resources, default_node_pools FROM projects"
        " WHERE NOT deleted")
    return [ProjectChanged(event_id="", project_id=row["id"], name=row["name"],
                           department_id=row["department_id"], resources=row["resources"],
                           default_node_pools=list(row["default_node_pools"]))
            for row in rows]


async def load_departments(conn: asyncpg.Connection) -> list[DepartmentChanged]:
    rows = await conn.fetch(
        "SELECT id, name, resources, default_node_pools FROM departments WHERE NOT deleted")
    return [DepartmentChanged(event_id="", department_id=row["id"], name=row["name"],
                              resources=row["resources"],
                              default_node_pools=list(row["default_node_pools"]))
            for row in rows]


async def load_node_pools(conn: asyncpg.Connection) -> list[NodePoolChanged]:
    rows = await conn.fetch(
        "SELECT name, label_key, label_value, gpu_placement, cpu_placement,"
        " min_guaranteed_runtime FROM node_pools WHERE NOT deleted")
    return [NodePoolChanged(event_id="", name=row["name"], label_key=row["label_key"],
                            label_value=row["label_value"],
                            gpu_placement_strategy=row["gpu_placement"],
                            cpu_placement_strategy=row["cpu_placement"],
                            min_guaranteed_runtime=row["min_guaranteed_runtime"])
            for row in rows]


async def load_queue_status(conn: asyncpg.Connection
                            ) -> dict[tuple[str, str, str], tuple[dict, int]]:
    rows = await conn.fetch("SELECT kind, name, node_pool, status, version FROM queue_status")
    return {(row["kind"], row["name"], row["node_pool"]): (row["status"], row["version"])
            for row in rows}


# org units: last value per unit, never older over newer ------------------------------------


def _resources(resources) -> list[dict]:
    return [r.model_dump(mode="json") for r in resources]


async def upsert_project(conn: asyncpg.Connection, event: ProjectChanged, sequence: int) -> bool:
    """True when stored (not older than what is stored)."""
    status = await conn.execute(
        "INSERT INTO projects (id, name, department_id, resources, default_node_pools, deleted,"
        " stream_sequence) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
        " department_id = excluded.department_id, resources = excluded.resources,"
        " default_node_pools = excluded.default_node_pools, deleted = excluded.deleted,"
        " stream_sequence = excluded.stream_sequence, updated_at = now()"
        " WHERE projects.stream_sequence < excluded.stream_sequence",
        event.project_id, event.name, event.department_id, _resources(event.resources),
        list(event.default_node_pools), event.deleted, sequence)
    return status.endswith(" 1")


async def upsert_department(conn: asyncpg.Connection, event: DepartmentChanged,
                            sequence: int) -> bool:
    status = await conn.execute(
        "INSERT INTO departments (id, name, resources, default_node_pools, deleted,"
        " stream_sequence) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, resources = excluded.resources,"
        " default_node_pools = excluded.default_node_pools, deleted = excluded.deleted,"
        " stream_sequence = excluded.stream_sequence, updated_at = now()"
        " WHERE departments.stream_sequence < excluded.stream_sequence",
        event.department_id, event.name, _resources(event.resources),
        list(event.default_node_pools), event.deleted, sequence)
    return status.endswith(" 1")


async def upsert_node_pool(conn: asyncpg.Connection, event: NodePoolChanged,
                           sequence: int) -> bool:
    status = await conn.execute(
        "INSERT INTO node_pools (name, label_key, label_value, gpu_placement, cpu_placement,"
        " min_guaranteed_runtime, deleted, stream_sequence)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (name) DO UPDATE SET label_key = excluded.label_key,"
        " label_value = excluded.label_value, gpu_placement = excluded.gpu_placement,"
        " cpu_placement = excluded.cpu_placement,"
        " min_guaranteed_runtime = excluded.min_guaranteed_runtime, deleted = excluded.deleted,"
        " stream_sequence = excluded.stream_sequence, updated_at = now()"
        " WHERE node_pools.stream_sequence < excluded.stream_sequence",
        event.name, event.label_key, event.label_value, event.gpu_placement_strategy,
        event.cpu_placement_strategy, event.min_guaranteed_runtime, event.deleted, sequence)
    return status.endswith(" 1")


# nodes ----------------------------------------------------------------------------------------


async def upsert_node(conn: asyncpg.Connection, node: core.Node, observed_at: datetime,
                      labels: Mapping[str, str] | None = None, max_pods: int = 110) -> bool:
    """Store the node unless a newer observation is stored already. True when stored."""
    status = await conn.execute(
        "INSERT INTO nodes (name, pool, ready, gpus, gpu_product, gpu_memory_mib, cpu_millis,"
        " memory_mib, observed_at, labels, max_pods)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (name) DO UPDATE SET pool = excluded.pool, ready = excluded.ready,"
        " gpus = excluded.gpus, gpu_product = excluded.gpu_product,"
        " gpu_memory_mib = excluded.gpu_memory_mib, cpu_millis = excluded.cpu_millis,"
        " memory_mib = excluded.memory_mib, observed_at = excluded.observed_at,"
        " labels = excluded.labels, max_pods = excluded.max_pods"
        " WHERE nodes.observed_at <= excluded.observed_at",
        node.name, node.pool, node.ready, node.gpus, node.gpu_product, node.gpu_memory_mib,
        node.cpu_millis, node.memory_mib, observed_at, dict(labels or {}), max_pods,
    )
    return status.endswith(" 1")


async def delete_node(conn: asyncpg.Connection, name: str, observed_at: datetime) -> bool:
    status = await conn.execute(
        "DELETE FROM nodes WHERE name = $1 AND observed_at <= $2", name, observed_at)
    return status.endswith(" 1")


# workloads ------------------------------------------------------------------------------------


async def insert_request(conn: asyncpg.Connection, request: WorkloadRequest) -> bool:
    """True when the request is new (a workload is submitted once)."""
    status = await conn.execute(
        "INSERT INTO workloads (id, project, priority_class, priority, preemptible, node_pools,"
        " pods, min_pods, gpus_per_pod, submitted_at, trace_headers, project_id, gpu_portion,"
        " gpu_memory_mib, gpu_limit, cpu_millis, memory_mib, node_type, name)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19) ON CONFLICT (id) DO NOTHING",
        request.id, request.project, request.priority_class, request.priority,
        request.preemptible, list(request.node_pools), request.pods, request.min_pods,
        request.gpus_per_pod, request.submitted_at, dict(request.trace_headers),
        request.project_id, request.gpu_portion, request.gpu_memory_mib, request.gpu_limit,
        request.cpu_millis, request.memory_mib, request.node_type, request.name,
    )
    return status.endswith(" 1")


async def is_finished(conn: asyncpg.Connection, workload_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT finished FROM workload_status WHERE workload_id = $1", workload_id))


async def save_pending(
        conn: asyncpg.Connection,
        changes: Iterable[tuple[str, core.PendingReason | None, datetime | None, int]]) -> None:
    """(workload id, reason or None, pending since, events sent) per change."""
    await conn.executemany(
        "UPDATE workloads SET pending_code = $2, pending_message = $3, pending_since = $4,"
        " pending_version = $5, pending_unschedulable = $6 WHERE id = $1",
        [(wid, reason.code.value if reason else None, reason.message if reason else None,
          since, version, bool(reason and reason.unschedulable))
         for wid, reason, since, version in changes],
    )


async def save_queue_status(conn: asyncpg.Connection,
                            changes: Iterable[tuple[tuple[str, str, str], dict, int]]) -> None:
    await conn.executemany(
        "INSERT INTO queue_status (kind, name, node_pool, status, version)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, name, node_pool) DO UPDATE SET"
        " status = excluded.status, version = excluded.version, updated_at = now()",
        [(key[0], key[1], key[2], status, version) for key, status, version in changes],
    )


# phases and allocations -----------------------------------------------------------------------


async def lock_status(conn: asyncpg.Connection, workload_id: str) -> tuple[int, bool] | None:
    """(sequence, finished) of the workload's last applied phase event, locked until commit."""
    row = await conn.fetchrow(
        "SELECT sequence, finished FROM workload_status WHERE workload_id = $1 FOR UPDATE",
        workload_id)
    return (row["sequence"], row["finished"]) if row else None


async def save_status(conn: asyncpg.Connection, status: WorkloadStatus) -> None:
    pods = [{"name": p.name, "node": p.node, "phase": p.phase, "gpus": p.gpus}
            for p in status.pods]
    await conn.execute(
        "INSERT INTO workload_status (workload_id, project, sequence, phase, finished, pods,"
        " trace_headers) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (workload_id) DO UPDATE SET sequence = excluded.sequence,"
        " phase = excluded.phase, finished = excluded.finished, pods = excluded.pods,"
        " trace_headers = excluded.trace_headers, updated_at = now()",
        status.workload_id, status.project, status.sequence, status.phase.value,
        status.finished, pods, dict(status.trace_headers),
    )


async def release_allocations(conn: asyncpg.Connection, workload_id: str,
                              keep: Iterable[str]) -> list[str]:
    """Drop the workload's allocations except those of `keep`; returns the pods released."""
    rows = await conn.fetch(
        "DELETE FROM allocations WHERE workload_id = $1 AND NOT (pod = ANY($2::text[]))"
        " RETURNING pod",
        workload_id, list(keep))
    if rows:  # an evicted pod that is gone is evicted no longer
        await conn.execute(
            "DELETE FROM evictions WHERE workload_id = $1 AND pod = ANY($2::text[])",
            workload_id, [row["pod"] for row in rows])
    return [row["pod"] for row in rows]


async def insert_evictions(conn: asyncpg.Connection, workload_id: str, pods: Iterable[str],
                           decision_id: str, reason: str) -> None:
    await conn.executemany(
        "INSERT INTO evictions (workload_id, pod, decision_id, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (workload_id, pod) DO NOTHING",
        [(workload_id, pod, decision_id, reason) for pod in pods])


async def load_evictions(conn: asyncpg.Connection) -> list[core.Eviction]:
    rows = await conn.fetch(
        "SELECT e.workload_id, e.reason, array_agg(e.pod ORDER BY e.pod) AS pods"
        " FROM evictions e JOIN allocations a USING (workload_id, pod)"
        " GROUP BY e.workload_id, e.reason")
    return [core.Eviction(row["workload_id"], row["reason"], None, "", tuple(row["pods"]))
            for row in rows]


async def insert_allocations(conn: asyncpg.Connection, workload_id: str,
                             pods: Sequence[core.PodPlacement], decision_id: str,
                             cpu: int = 0, memory: int = 0) -> None:
    # A plain insert: a pod that already has an allocation must never be placed again, and if
    # it were, the transaction fails and the decision is not published.
    await conn.executemany(
        "INSERT INTO allocations (workload_id, pod, node, gpu_devices, decision_id, portion,"
        " gpu_memory_mib, gpu_limit, cpu_millis, memory_mib)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [(workload_id, p.pod, p.node, list(p.gpu_devices), decision_id, p.portion,
          p.gpu_memory_mib, p.gpu_limit, cpu, memory) for p in pods],
    )
