"""The scheduler's SQL, all of it. Every function runs on the caller's connection, inside the
caller's transaction."""

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.state import PodStatus, WorkloadRequest, WorkloadStatus

# loading at start -----------------------------------------------------------------------------


async def load_nodes(conn: asyncpg.Connection) -> list[core.Node]:
    rows = await conn.fetch(
        "SELECT name, pool, ready, gpus, gpu_product, gpu_memory_mib, cpu_millis, memory_mib"
        " FROM nodes")
    return [core.Node(**dict(row)) for row in rows]


async def load_requests(conn: asyncpg.Connection) -> list[WorkloadRequest]:
    """Requests of workloads that are not over."""
    rows = await conn.fetch(
        "SELECT w.id, w.project, w.priority_class, w.priority, w.preemptible, w.node_pools,"
        " w.pods, w.min_pods, w.gpus_per_pod, w.submitted_at, w.trace_headers"
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
    rows = await conn.fetch("SELECT workload_id, pod, node, gpu_devices FROM allocations")
    return [core.Allocation(row["workload_id"], row["pod"], row["node"],
                            tuple(row["gpu_devices"])) for row in rows]


async def load_pending(conn: asyncpg.Connection) -> list[core.PendingReason]:
    rows = await conn.fetch(
        "SELECT id, pending_code, pending_message FROM workloads"
        " WHERE pending_code IS NOT NULL")
    return [core.PendingReason(row["id"], core.PendingCode(row["pending_code"]),
                               row["pending_message"]) for row in rows]


# nodes ----------------------------------------------------------------------------------------


async def upsert_node(conn: asyncpg.Connection, node: core.Node, observed_at: datetime) -> bool:
    """Store the node unless a newer observation is stored already. True when stored."""
    status = await conn.execute(
        "INSERT INTO nodes (name, pool, ready, gpus, gpu_product, gpu_memory_mib, cpu_millis,"
        " memory_mib, observed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (name) DO UPDATE SET pool = excluded.pool, ready = excluded.ready,"
        " gpus = excluded.gpus, gpu_product = excluded.gpu_product,"
        " gpu_memory_mib = excluded.gpu_memory_mib, cpu_millis = excluded.cpu_millis,"
        " memory_mib = excluded.memory_mib, observed_at = excluded.observed_at"
        " WHERE nodes.observed_at <= excluded.observed_at",
        node.name, node.pool, node.ready, node.gpus, node.gpu_product, node.gpu_memory_mib,
        node.cpu_millis, node.memory_mib, observed_at,
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
        " pods, min_pods, gpus_per_pod, submitted_at, trace_headers)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
        request.id, request.project, request.priority_class, request.priority,
        request.preemptible, list(request.node_pools), request.pods, request.min_pods,
        request.gpus_per_pod, request.submitted_at, dict(request.trace_headers),
    )
    return status.endswith(" 1")


async def is_finished(conn: asyncpg.Connection, workload_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT finished FROM workload_status WHERE workload_id = $1", workload_id))


async def save_pending(conn: asyncpg.Connection,
                       changes: Iterable[tuple[str, core.PendingReason | None]]) -> None:
    await conn.executemany(
        "UPDATE workloads SET pending_code = $2, pending_message = $3 WHERE id = $1",
        [(wid, reason.code.value if reason else None, reason.message if reason else None)
         for wid, reason in changes],
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
    return [row["pod"] for row in rows]


async def insert_allocations(conn: asyncpg.Connection, workload_id: str,
                             pods: Sequence[core.PodPlacement], decision_id: str) -> None:
    # A plain insert: a pod that already has an allocation must never be placed again, and if
    # it were, the transaction fails and the decision is not published.
    await conn.executemany(
        "INSERT INTO allocations (workload_id, pod, node, gpu_devices, decision_id)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(workload_id, p.pod, p.node, list(p.gpu_devices), decision_id) for p in pods],
    )
