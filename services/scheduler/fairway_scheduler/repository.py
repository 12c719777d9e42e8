"""The scheduler's SQL, all of it. Every function runs on the caller's connection, inside the
caller's transaction."""

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
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


async def first_deliveries(conn: asyncpg.Connection, consumer: str,
                           msg_ids: Sequence[str]) -> set[str]:
    """`fairway_store.first_delivery` for a whole fetch, in one statement: the ids among
    `msg_ids` applied for the first time (recorded now, inside the caller's transaction)."""
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, msg_id) SELECT $1, m FROM unnest($2::text[]) AS m"
        " ON CONFLICT DO NOTHING RETURNING msg_id",
        consumer, list(dict.fromkeys(msg_ids)))
    return {row["msg_id"] for row in rows}


def _request_row(request: WorkloadRequest) -> dict:
    return {"id": request.id, "project": request.project,
            "priority_class": request.priority_class, "priority": request.priority,
            "preemptible": request.preemptible, "node_pools": list(request.node_pools),
            "pods": request.pods, "min_pods": request.min_pods,
            "gpus_per_pod": request.gpus_per_pod,
            "submitted_at": request.submitted_at.isoformat(),
            "trace_headers": dict(request.trace_headers), "project_id": request.project_id,
            "gpu_portion": request.gpu_portion, "gpu_memory_mib": request.gpu_memory_mib,
            "gpu_limit": request.gpu_limit, "cpu_millis": request.cpu_millis,
            "memory_mib": request.memory_mib, "node_type": request.node_type,
            "name": request.name}


_REQUEST_COLUMNS = ("id, project, priority_class, priority, preemptible, node_pools, pods,"
                    " min_pods, gpus_per_pod, submitted_at, trace_headers, project_id,"
                    " gpu_portion, gpu_memory_mib, gpu_limit, cpu_millis, memory_mib,"
                    " node_type, name")


async def insert_requests(conn: asyncpg.Connection, requests: Sequence[WorkloadRequest]
                          ) -> set[str]:
    """`insert_request` for many (distinct ids), in one statement: the ids of the requests
    that are new."""
    if not requests:
        return set()
    # One JSON array of rows: its fields map onto the columns by name and type (text[] from a
    # JSON array, timestamptz from ISO text), with none of unnest's trouble with arrays.
    rows = await conn.fetch(
        f"INSERT INTO workloads ({_REQUEST_COLUMNS})"
        f" SELECT {_REQUEST_COLUMNS}"
        " FROM jsonb_populate_recordset(NULL::workloads, $1::text::jsonb)"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        json.dumps([_request_row(request) for request in requests]))
    return {row["id"] for row in rows}


async def finished_among(conn: asyncpg.Connection, workload_ids: Collection[str]) -> set[str]:
    """The workloads among these whose last phase event ended them."""
    if not workload_ids:
        return set()
    rows = await conn.fetch(
        "SELECT workload_id FROM workload_status WHERE workload_id = ANY($1::text[])"
        " AND finished", list(workload_ids))
    return {row["workload_id"] for row in rows}


async def save_pending(
        conn: asyncpg.Connection,
        changes: Iterable[tuple[str, core.PendingReason | None, datetime | None, int]]) -> None:
    """(workload id, reason or None, pending since, events sent) per change (one per
    workload), in one statement."""
    changes = list(changes)
    if not changes:
        return
    await conn.execute(
        "UPDATE workloads w SET pending_code = t.code, pending_message = t.message,"
        " pending_since = t.since, pending_version = t.version,"
        " pending_unschedulable = t.unschedulable"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::integer[],"
        " $6::boolean[]) AS t(id, code, message, since, version, unschedulable)"
        " WHERE w.id = t.id",
        [wid for wid, _, _, _ in changes],
        [reason.code.value if reason else None for _, reason, _, _ in changes],
        [reason.message if reason else None for _, reason, _, _ in changes],
        [since for _, _, since, _ in changes],
        [version for _, _, _, version in changes],
        [bool(reason and reason.unschedulable) for _, reason, _, _ in changes],
    )


async def save_queue_status(conn: asyncpg.Connection,
                            changes: Iterable[tuple[tuple[str, str, str], dict, int]]) -> None:
    """The queues' last published status (one change per queue), in one statement."""
    changes = list(changes)
    if not changes:
        return
    await conn.execute(
        "INSERT INTO queue_status (kind, name, node_pool, status, version)"
        " SELECT k, n, p, s::jsonb, v FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::integer[]) AS t(k, n, p, s, v)"
        " ON CONFLICT (kind, name, node_pool) DO UPDATE SET"
        " status = excluded.status, version = excluded.version, updated_at = now()",
        [key[0] for key, _, _ in changes], [key[1] for key, _, _ in changes],
        [key[2] for key, _, _ in changes], [json.dumps(status) for _, status, _ in changes],
        [version for _, _, version in changes],
    )


# phases and allocations -----------------------------------------------------------------------


async def lock_statuses(conn: asyncpg.Connection, workload_ids: Collection[str]
                        ) -> dict[str, int]:
    """The sequence of each workload's last applied phase event (those stored), the rows
    locked until commit."""
    rows = await conn.fetch(
        "SELECT workload_id, sequence FROM workload_status WHERE workload_id = ANY($1::text[])"
        " ORDER BY workload_id FOR UPDATE", list(workload_ids))
    return {row["workload_id"]: row["sequence"] for row in rows}


async def save_statuses(conn: asyncpg.Connection, statuses: Sequence[WorkloadStatus]) -> None:
    """Each workload's status as its last applied pod-group event reports it (one per
    workload), in one statement."""
    if not statuses:
        return
    await conn.execute(
        "INSERT INTO workload_status (workload_id, project, sequence, phase, finished, pods,"
        " trace_headers)"
        " SELECT w, p, s, ph, f, pods::jsonb, th::jsonb FROM unnest($1::text[], $2::text[],"
        " $3::integer[], $4::text[], $5::boolean[], $6::text[], $7::text[])"
        " AS t(w, p, s, ph, f, pods, th)"
        " ON CONFLICT (workload_id) DO UPDATE SET sequence = excluded.sequence,"
        " phase = excluded.phase, finished = excluded.finished, pods = excluded.pods,"
        " trace_headers = excluded.trace_headers, updated_at = now()",
        [s.workload_id for s in statuses], [s.project for s in statuses],
        [s.sequence for s in statuses], [s.phase.value for s in statuses],
        [s.finished for s in statuses],
        [json.dumps([{"name": p.name, "node": p.node, "phase": p.phase, "gpus": p.gpus}
                     for p in s.pods]) for s in statuses],
        [json.dumps(dict(s.trace_headers)) for s in statuses],
    )


async def release_allocations(conn: asyncpg.Connection, keep: Mapping[str, Collection[str]]
                              ) -> list[tuple[str, str]]:
    """Drop each workload's allocations except those of its pods in `keep`, in one
    statement; returns the (workload, pod) released. An evicted pod that is gone is evicted
    no longer."""
    if not keep:
        return []
    kept = [(wid, pod) for wid, pods in keep.items() for pod in pods]
    rows = await conn.fetch(
        "WITH released AS ("
        " DELETE FROM allocations a WHERE a.workload_id = ANY($1::text[]) AND NOT EXISTS ("
        " SELECT 1 FROM unnest($2::text[], $3::text[]) AS k(w, p)"
        " WHERE k.w = a.workload_id AND k.p = a.pod)"
        " RETURNING a.workload_id, a.pod),"
        " unevicted AS (DELETE FROM evictions e USING released r"
        " WHERE e.workload_id = r.workload_id AND e.pod = r.pod)"
        " SELECT workload_id, pod FROM released",
        list(keep), [wid for wid, _ in kept], [pod for _, pod in kept])
    return [(row["workload_id"], row["pod"]) for row in rows]


async def insert_evictions(conn: asyncpg.Connection,
                           evictions: Sequence[tuple[str, str, str, str]]) -> None:
    """(workload, pod, decision id, reason) per pod evicted, in one statement."""
    if not evictions:
        return
    await conn.execute(
        "INSERT INTO evictions (workload_id, pod, decision_id, reason)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
        " ON CONFLICT (workload_id, pod) DO NOTHING",
        *(list(column) for column in zip(*evictions, strict=True)))


async def load_evictions(conn: asyncpg.Connection) -> list[core.Eviction]:
    rows = await conn.fetch(
        "SELECT e.workload_id, e.reason, array_agg(e.pod ORDER BY e.pod) AS pods"
        " FROM evictions e JOIN allocations a USING (workload_id, pod)"
        " GROUP BY e.workload_id, e.reason")
    return [core.Eviction(row["workload_id"], row["reason"], None, "", tuple(row["pods"]))
            for row in rows]


async def insert_allocations(
        conn: asyncpg.Connection,
        placements: Sequence[tuple[str, core.PodPlacement, str, int, int]]) -> None:
    """(workload, pod placed, decision id, CPU, memory) per pod, in one statement."""
    if not placements:
        return
    # A plain insert: a pod that already has an allocation must never be placed again, and if
    # it were, the transaction fails and the decision is not published.
    await conn.execute(
        "INSERT INTO allocations (workload_id, pod, node, gpu_devices, decision_id, portion,"
        " gpu_memory_mib, gpu_limit, cpu_millis, memory_mib)"
        " SELECT w, p, n, g::integer[], d, po, gm, gl, c, m FROM unnest($1::text[], $2::text[],"
        " $3::text[], $4::text[], $5::text[], $6::float8[], $7::integer[], $8::float8[],"
        " $9::integer[], $10::integer[]) AS t(w, p, n, g, d, po, gm, gl, c, m)",
        [wid for wid, _, _, _, _ in placements],
        [p.pod for _, p, _, _, _ in placements],
        [p.node for _, p, _, _, _ in placements],
        # integer[] as its text form: unnest cannot take rows of different lengths
        ["{" + ",".join(str(d) for d in p.gpu_devices) + "}" for _, p, _, _, _ in placements],
        [decision for _, _, decision, _, _ in placements],
        [p.portion for _, p, _, _, _ in placements],
        [p.gpu_memory_mib for _, p, _, _, _ in placements],
        [p.gpu_limit for _, p, _, _, _ in placements],
        [cpu for _, _, _, cpu, _ in placements],
        [memory for _, _, _, _, memory in placements],
    )
