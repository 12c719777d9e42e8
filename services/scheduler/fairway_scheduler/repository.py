"""The scheduler's SQL, all of it. Every function runs on the caller's connection, inside the
caller's transaction if there is one: what a fetch or a cycle writes is one statement, atomic
on its own."""

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from fairway_contracts.events import DepartmentChanged, NodePoolChanged, ProjectChanged
from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.core.cluster import PendingInfo, PodStatus, WorkloadRequest, WorkloadStatus
from fairway_scheduler.core.model import PodSize
from fairway_store import outbox_columns, outbox_insert

# loading at start -----------------------------------------------------------------------------


async def load_nodes(conn: asyncpg.Connection
                     ) -> list[tuple[core.Node, Mapping[str, str], int]]:
    """(node as reported, its labels, its pod capacity)."""
    rows = await conn.fetch(
        "SELECT name, pool, ready, gpus, gpu_product, gpu_memory_mib, cpu_millis, memory_mib,"
        " labels, max_pods FROM nodes")
    return [(core.Node(**{k: v for k, v in dict(row).items() if k not in ("labels", "max_pods")}),
             row["labels"], row["max_pods"]) for row in rows]


async def load_foreign(conn: asyncpg.Connection) -> dict[str, tuple[int, int, int, int]]:
    """Per node, what pods another scheduler bound hold: (pods, GPUs, millicores, MiB)."""
    rows = await conn.fetch(
        "SELECT name, foreign_pods, foreign_gpus, foreign_cpu_millis, foreign_memory_mib"
        " FROM nodes WHERE foreign_pods > 0")
    return {row["name"]: (row["foreign_pods"], row["foreign_gpus"], row["foreign_cpu_millis"],
                          row["foreign_memory_mib"]) for row in rows}


async def load_requests(conn: asyncpg.Connection) -> list[WorkloadRequest]:
    """Requests of workloads that are not over."""
    rows = await conn.fetch(
        "SELECT w.id, w.project, w.priority_class, w.priority, w.preemptible, w.node_pools,"
        " w.pods, w.min_pods, w.gpus_per_pod, w.submitted_at, w.trace_headers, w.project_id,"
        " w.gpu_portion, w.gpu_memory_mib, w.gpu_limit, w.gpu_memory_limit_mib, w.cpu_millis,"
        " w.memory_mib, w.node_type, w.name, w.master, w.topology_required,"
        " w.topology_preferred, w.revision"
        " FROM workloads w LEFT JOIN workload_status s ON s.workload_id = w.id"
        " WHERE s.finished IS NOT TRUE")
    return [WorkloadRequest(**{**dict(row), "node_pools": tuple(row["node_pools"]),
                               "master": _master(row["master"])})
            for row in rows]


def _master(value: str | dict | None) -> PodSize | None:
    """The master's size as stored (a JSON object of `PodSize`'s fields; NULL: none)."""
    if value is None:
        return None
    return PodSize(**(json.loads(value) if isinstance(value, str) else value))


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
        " min_guaranteed_runtime, time_aware_fairness, topology_levels, swap_enabled,"
        " cpu_swap_memory_mib, reserved_gpu_memory_for_swap_mib FROM node_pools"
        " WHERE NOT deleted")
    return [NodePoolChanged(event_id="", name=row["name"], label_key=row["label_key"],
                            label_value=row["label_value"],
                            gpu_placement_strategy=row["gpu_placement"],
                            cpu_placement_strategy=row["cpu_placement"],
                            min_guaranteed_runtime=row["min_guaranteed_runtime"],
                            time_aware_fairness=_json(row["time_aware_fairness"]),
                            topology_levels=list(row["topology_levels"]),
                            swap_enabled=row["swap_enabled"],
                            cpu_swap_memory_mib=row["cpu_swap_memory_mib"],
                            reserved_gpu_memory_for_swap_mib=row[
                                "reserved_gpu_memory_for_swap_mib"])
            for row in rows]


def _json(value: str | dict | None) -> dict | None:
    return json.loads(value) if isinstance(value, str) else value


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
        " min_guaranteed_runtime, deleted, stream_sequence, time_aware_fairness,"
        " topology_levels, swap_enabled, cpu_swap_memory_mib, reserved_gpu_memory_for_swap_mib)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12, $13)"
        " ON CONFLICT (name) DO UPDATE SET label_key = excluded.label_key,"
        " label_value = excluded.label_value, gpu_placement = excluded.gpu_placement,"
        " cpu_placement = excluded.cpu_placement,"
        " min_guaranteed_runtime = excluded.min_guaranteed_runtime, deleted = excluded.deleted,"
        " stream_sequence = excluded.stream_sequence,"
        " time_aware_fairness = excluded.time_aware_fairness,"
        " topology_levels = excluded.topology_levels, swap_enabled = excluded.swap_enabled,"
        " cpu_swap_memory_mib = excluded.cpu_swap_memory_mib,"
        " reserved_gpu_memory_for_swap_mib = excluded.reserved_gpu_memory_for_swap_mib,"
        " updated_at = now()"
        " WHERE node_pools.stream_sequence < excluded.stream_sequence",
        event.name, event.label_key, event.label_value, event.gpu_placement_strategy,
        event.cpu_placement_strategy, event.min_guaranteed_runtime, event.deleted, sequence,
        None if event.time_aware_fairness is None
        else event.time_aware_fairness.model_dump_json(exclude_none=True),
        list(event.topology_levels), event.swap_enabled, event.cpu_swap_memory_mib,
        event.reserved_gpu_memory_for_swap_mib)
    return status.endswith(" 1")


# usage history (time-aware fairness) ---------------------------------------------------------


async def load_usage(conn: asyncpg.Connection, since: datetime
                     ) -> list[tuple[tuple[str, str, str], datetime, float, float, float]]:
    """Every queue's usage buckets that start at or after `since`."""
    rows = await conn.fetch(
        "SELECT kind, name, node_pool, bucket_start, gpu_seconds, cpu_millicore_seconds,"
        " memory_mib_seconds FROM queue_usage WHERE bucket_start >= $1", since)
    return [((row["kind"], row["name"], row["node_pool"]), row["bucket_start"],
             row["gpu_seconds"], row["cpu_millicore_seconds"], row["memory_mib_seconds"])
            for row in rows]


async def add_usage(conn: asyncpg.Connection,
                    rows: Sequence[tuple[tuple[str, str, str], datetime, float,
                                         tuple[float, float, float]]],
                    forget_before: datetime) -> None:
    """Add resource-seconds to their buckets (created at 0 when new), in one statement, and
    delete the buckets older than the retention."""
    if rows:
        await conn.execute(
            "INSERT INTO queue_usage AS u (kind, name, node_pool, bucket_start, bucket_seconds,"
            " gpu_seconds, cpu_millicore_seconds, memory_mib_seconds)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],"
            " $5::float8[], $6::float8[], $7::float8[], $8::float8[])"
            " ON CONFLICT (kind, name, node_pool, bucket_start) DO UPDATE SET"
            " gpu_seconds = u.gpu_seconds + excluded.gpu_seconds,"
            " cpu_millicore_seconds = u.cpu_millicore_seconds + excluded.cpu_millicore_seconds,"
            " memory_mib_seconds = u.memory_mib_seconds + excluded.memory_mib_seconds",
            [key[0] for key, *_ in rows], [key[1] for key, *_ in rows],
            [key[2] for key, *_ in rows], [start for _, start, _, _ in rows],
            [size for _, _, size, _ in rows], [a[0] for *_, a in rows],
            [a[1] for *_, a in rows], [a[2] for *_, a in rows])
    await conn.execute("DELETE FROM queue_usage WHERE bucket_start < $1", forget_before)


# nodes ----------------------------------------------------------------------------------------


async def upsert_node(conn: asyncpg.Connection, node: core.Node, observed_at: datetime,
                      labels: Mapping[str, str] | None = None, max_pods: int = 110,
                      foreign: tuple[int, int, int, int] = (0, 0, 0, 0)) -> bool:
    """Store the node (and its foreign usage: pods, GPUs, millicores, MiB) unless a newer
    observation is stored already. True when stored."""
    status = await conn.execute(
        "INSERT INTO nodes (name, pool, ready, gpus, gpu_product, gpu_memory_mib, cpu_millis,"
        " memory_mib, observed_at, labels, max_pods, foreign_pods, foreign_gpus,"
        " foreign_cpu_millis, foreign_memory_mib)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (name) DO UPDATE SET pool = excluded.pool, ready = excluded.ready,"
        " gpus = excluded.gpus, gpu_product = excluded.gpu_product,"
        " gpu_memory_mib = excluded.gpu_memory_mib, cpu_millis = excluded.cpu_millis,"
        " memory_mib = excluded.memory_mib, observed_at = excluded.observed_at,"
        " labels = excluded.labels, max_pods = excluded.max_pods,"
        " foreign_pods = excluded.foreign_pods, foreign_gpus = excluded.foreign_gpus,"
        " foreign_cpu_millis = excluded.foreign_cpu_millis,"
        " foreign_memory_mib = excluded.foreign_memory_mib"
        " WHERE nodes.observed_at <= excluded.observed_at",
        node.name, node.pool, node.ready, node.gpus, node.gpu_product, node.gpu_memory_mib,
        node.cpu_millis, node.memory_mib, observed_at, dict(labels or {}), max_pods, *foreign,
    )
    return status.endswith(" 1")


async def delete_node(conn: asyncpg.Connection, name: str, observed_at: datetime) -> bool:
    status = await conn.execute(
        "DELETE FROM nodes WHERE name = $1 AND observed_at <= $2", name, observed_at)
    return status.endswith(" 1")


# workloads ------------------------------------------------------------------------------------
# The handlers and the cycle write with few round trips whatever their number of rows: arrays
# unnested (or one JSON array of rows), several tables in one statement through data-modifying
# CTEs (each sees the tables as the statement began; none reads what another writes).

# Each message recorded for its consumer: the ids not applied before come back (the rule of
# `fairway_store.first_delivery`, for a whole fetch).
_FIRST_DELIVERIES = ("fresh AS (INSERT INTO inbox (consumer, msg_id)"
                     " SELECT $1, m FROM unnest($2::text[]) AS m"
                     " ON CONFLICT DO NOTHING RETURNING msg_id)")

_REQUEST_COLUMNS = ("id, project, priority_class, priority, preemptible, node_pools, pods,"
                    " min_pods, gpus_per_pod, submitted_at, trace_headers, project_id,"
                    " gpu_portion, gpu_memory_mib, gpu_limit, gpu_memory_limit_mib, cpu_millis,"
                    " memory_mib, node_type, name, master, topology_required,"
                    " topology_preferred, revision")


def _request_row(msg_id: str, request: WorkloadRequest) -> dict:
    return {"msg_id": msg_id, "id": request.id, "project": request.project,
            "priority_class": request.priority_class, "priority": request.priority,
            "preemptible": request.preemptible, "node_pools": list(request.node_pools),
            "pods": request.pods, "min_pods": request.min_pods,
            "gpus_per_pod": request.gpus_per_pod,
            "submitted_at": request.submitted_at.isoformat(),
            "trace_headers": dict(request.trace_headers), "project_id": request.project_id,
            "gpu_portion": request.gpu_portion, "gpu_memory_mib": request.gpu_memory_mib,
            "gpu_limit": request.gpu_limit,
            "gpu_memory_limit_mib": request.gpu_memory_limit_mib,
            "cpu_millis": request.cpu_millis,
            "memory_mib": request.memory_mib, "node_type": request.node_type,
            "name": request.name,
            "master": dataclasses.asdict(request.master) if request.master else None,
            "topology_required": request.topology_required,
            "topology_preferred": request.topology_preferred, "revision": request.revision}


async def store_requests(conn: asyncpg.Connection, consumer: str, msg_ids: Sequence[str],
                         requests: Sequence[tuple[str, WorkloadRequest]]) -> dict[str, bool]:
    """A fetch of submissions in one statement: every message id recorded for `consumer`;
    each request (one per workload, with the id of the message that brought it) stored when
    its message is new and its workload too (a workload is submitted once), or when it is a
    higher revision of the stored one (a scaled third-party owner: its pods and minimum,
    the rest as first stored). Returns the workloads stored, each with whether its last
    phase event, come first, ended it."""
    # The rows as one JSON array: fields map onto the columns by name and type (text[] from
    # a JSON array, timestamptz from ISO text), with none of unnest's trouble with arrays.
    rows = await conn.fetch(
        f"WITH {_FIRST_DELIVERIES},"
        f" stored AS (INSERT INTO workloads ({_REQUEST_COLUMNS}) SELECT {_REQUEST_COLUMNS}"
        " FROM jsonb_array_elements($3::text::jsonb) AS e(doc),"
        " jsonb_populate_record(NULL::workloads, e.doc) AS w"
        " WHERE e.doc->>'msg_id' IN (SELECT msg_id FROM fresh)"
        " ON CONFLICT (id) DO UPDATE SET pods = EXCLUDED.pods, min_pods = EXCLUDED.min_pods,"
        " revision = EXCLUDED.revision WHERE EXCLUDED.revision > workloads.revision"
        " RETURNING id)"
        " SELECT stored.id, coalesce(s.finished, false) AS finished"
        " FROM stored LEFT JOIN workload_status s ON s.workload_id = stored.id",
        consumer, list(dict.fromkeys(msg_ids)),
        json.dumps([_request_row(msg_id, request) for msg_id, request in requests]))
    return {row["id"]: row["finished"] for row in rows}


# phases and allocations -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodGroupsStored:
    """What storing a fetch of pod-group events did: per event (by its index in the fetch)
    that was new, whether it was applied and the sequence it was compared with (None: the
    workload's first); and the (workload, pod) allocations released."""

    compared: dict[int, tuple[bool, int | None]]
    released: list[tuple[str, str]]


async def store_pod_groups(conn: asyncpg.Connection, consumer: str,
                           events: Sequence[tuple[str, WorkloadStatus]]) -> PodGroupsStored:
    """A fetch of pod-group events, (message id, status) each in stream order, in one
    statement, as if stored one after the other: every message id recorded for `consumer`;
    an event new (its first occurrence, not applied before) is applied when newer than the
    workload's stored one and than the events applied before it in the fetch; a workload's
    last applied event is stored; a pod is released when an applied event of its workload
    no longer holds it. An evicted pod that is gone is evicted no longer."""
    holding = [(n, pod) for n, (_, status) in enumerate(events, 1)
               for pod in status.pods_holding()]
    rows = await conn.fetch(
        f"WITH {_FIRST_DELIVERIES},"
        " events AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[],"
        " $7::text[], $8::boolean[], $9::text[], $10::text[])"
        " WITH ORDINALITY AS e(msg_id, w, p, s, ph, f, pods, th, n)),"
        " new AS (SELECT DISTINCT ON (msg_id) * FROM events"
        " WHERE msg_id IN (SELECT msg_id FROM fresh) ORDER BY msg_id, n),"
        # the stored rows locked until commit: a sequence compared stays the last applied
        " stored AS (SELECT workload_id, sequence FROM workload_status"
        " WHERE workload_id IN (SELECT w FROM new) ORDER BY workload_id FOR UPDATE),"
        " compared AS (SELECT new.*, greatest(stored.sequence, max(new.s) OVER ("
        " PARTITION BY new.w ORDER BY new.n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))"
        " AS last FROM new LEFT JOIN stored ON stored.workload_id = new.w),"
        " applied AS (SELECT * FROM compared WHERE last IS NULL OR s > last),"
        " saved AS (INSERT INTO workload_status (workload_id, project, sequence, phase,"
        " finished, pods, trace_headers)"
        " SELECT DISTINCT ON (w) w, p, s, ph, f, pods::jsonb, th::jsonb FROM applied"
        " ORDER BY w, n DESC"
        " ON CONFLICT (workload_id) DO UPDATE SET sequence = excluded.sequence,"
        " phase = excluded.phase, finished = excluded.finished, pods = excluded.pods,"
        " trace_headers = excluded.trace_headers, updated_at = now()),"
        " applied_per_workload AS (SELECT w, count(*) AS events FROM applied GROUP BY w),"
        " held AS (SELECT applied.w, h.pod, count(*) AS events FROM applied"
        " JOIN unnest($11::bigint[], $12::text[]) AS h(n, pod) ON h.n = applied.n"
        " GROUP BY applied.w, h.pod),"
        " released AS (DELETE FROM allocations a USING applied_per_workload x"
        " WHERE a.workload_id = x.w AND NOT EXISTS (SELECT 1 FROM held"
        " WHERE held.w = a.workload_id AND held.pod = a.pod AND held.events = x.events)"
        " RETURNING a.workload_id, a.pod),"
        " unevicted AS (DELETE FROM evictions e USING released r"
        " WHERE e.workload_id = r.workload_id AND e.pod = r.pod)"
        " SELECT n, last IS NULL OR s > last AS applied, last, NULL AS workload_id,"
        " NULL AS pod FROM compared"
        " UNION ALL SELECT NULL, NULL, NULL, workload_id, pod FROM released",
        consumer, list(dict.fromkeys(msg_id for msg_id, _ in events)),
        [msg_id for msg_id, _ in events], [s.workload_id for _, s in events],
        [s.project for _, s in events], [s.sequence for _, s in events],
        [s.phase.value for _, s in events], [s.finished for _, s in events],
        [json.dumps([{"name": p.name, "node": p.node, "phase": p.phase, "gpus": p.gpus,
                      "role": p.role}
                     for p in s.pods]) for _, s in events],
        [json.dumps(dict(s.trace_headers)) for _, s in events],
        [n for n, _ in holding], [pod for _, pod in holding])
    return PodGroupsStored(
        compared={row["n"] - 1: (row["applied"], row["last"]) for row in rows
                  if row["n"] is not None},
        released=[(row["workload_id"], row["pod"]) for row in rows if row["n"] is None])


async def load_evictions(conn: asyncpg.Connection) -> list[core.Eviction]:
    rows = await conn.fetch(
        "SELECT e.workload_id, e.reason, e.by_workload,"
        " array_agg(e.pod ORDER BY e.pod) AS pods"
        " FROM evictions e JOIN allocations a USING (workload_id, pod)"
        " GROUP BY e.workload_id, e.reason, e.by_workload")
    return [core.Eviction(row["workload_id"], row["reason"], row["by_workload"], "",
                          tuple(row["pods"])) for row in rows]


# a cycle's outcome ----------------------------------------------------------------------------


async def save_outcome(
        conn: asyncpg.Connection, *,
        evictions: Sequence[tuple[str, str, str, str, str | None]],
        allocations: Sequence[tuple[str, core.PodPlacement, str, int, int]],
        pending: Sequence[tuple[str, core.WaitReason | None, datetime | None, int]],
        queues: Sequence[tuple[tuple[str, str, str], dict, int]],
        events: Sequence[tuple[str, BaseModel, str, Mapping[str, str] | None]]) -> None:
    """A cycle's rows and the events that announce them in one statement (so one
    transaction): `evictions` (workload, pod, decision id, reason, the workload it was
    for) per pod evicted; `allocations` (workload, pod placed, decision id, CPU, memory)
    per pod; `pending` (workload, reason or None, pending since, events sent) per workload
    whose reason changed;
    `queues` the last published status per queue that changed; `events` (subject, event,
    msg id, trace headers) for the outbox, in the order they are to be published."""
    await conn.execute(
        "WITH evicted AS (INSERT INTO evictions (workload_id, pod, decision_id, reason,"
        " by_workload)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
        " ON CONFLICT (workload_id, pod) DO NOTHING),"
        # A plain insert: a pod that already has an allocation must never be placed again,
        # and if it were, the transaction fails and the decision is not published.
        " allocated AS (INSERT INTO allocations (workload_id, pod, node, gpu_devices,"
        " decision_id, portion, gpu_memory_mib, gpu_limit, cpu_millis, memory_mib)"
        " SELECT w, p, n, g::integer[], d, po, gm, gl, c, m FROM unnest($6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::integer[],"
        " $13::float8[], $14::integer[], $15::integer[])"
        " AS t(w, p, n, g, d, po, gm, gl, c, m)),"
        " waiting AS (UPDATE workloads w SET pending_code = t.code,"
        " pending_message = t.message, pending_since = t.since, pending_version = t.version,"
        " pending_unschedulable = t.unschedulable"
        " FROM unnest($16::text[], $17::text[], $18::text[], $19::timestamptz[],"
        " $20::integer[], $21::boolean[]) AS t(id, code, message, since, version, unschedulable)"
        " WHERE w.id = t.id),"
        " queued AS (INSERT INTO queue_status (kind, name, node_pool, status, version)"
        " SELECT k, n, p, s::jsonb, v FROM unnest($22::text[], $23::text[], $24::text[],"
        " $25::text[], $26::integer[]) AS t(k, n, p, s, v)"
        " ON CONFLICT (kind, name, node_pool) DO UPDATE SET"
        " status = excluded.status, version = excluded.version, updated_at = now()) "
        + outbox_insert(27),
        [e[0] for e in evictions], [e[1] for e in evictions], [e[2] for e in evictions],
        [e[3] for e in evictions], [e[4] for e in evictions],
        [wid for wid, _, _, _, _ in allocations],
        [p.pod for _, p, _, _, _ in allocations],
        [p.node for _, p, _, _, _ in allocations],
        # integer[] as its text form: unnest cannot take rows of different lengths
        ["{" + ",".join(str(d) for d in p.gpu_devices) + "}" for _, p, _, _, _ in allocations],
        [decision for _, _, decision, _, _ in allocations],
        [p.portion for _, p, _, _, _ in allocations],
        [p.gpu_memory_mib for _, p, _, _, _ in allocations],
        [p.gpu_limit for _, p, _, _, _ in allocations],
        [cpu for _, _, _, cpu, _ in allocations],
        [memory for _, _, _, _, memory in allocations],
        [wid for wid, _, _, _ in pending],
        [reason.code.value if reason else None for _, reason, _, _ in pending],
        [reason.message if reason else None for _, reason, _, _ in pending],
        [since for _, _, since, _ in pending],
        [version for _, _, _, version in pending],
        [bool(reason and reason.unschedulable) for _, reason, _, _ in pending],
        [key[0] for key, _, _ in queues], [key[1] for key, _, _ in queues],
        [key[2] for key, _, _ in queues], [json.dumps(status) for _, status, _ in queues],
        [version for _, _, version in queues],
        *outbox_columns(events),
    )
