"""Lifecycle's SQL: the workloads it drives and the phase it last published for each, and
what the scheduling-rule enforcer counts (org units' rules, each workload's usage)."""

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_contracts.events import NodePoolChanged, WorkloadSubmitted
from fairway_lifecycle.core.fold import Desired, WorkloadInfo
from fairway_lifecycle.core.recording import Progress, Recorded
from fairway_lifecycle.core.rules import UsageState
from fairway_store import OutboxItem, outbox_columns


@dataclass
class WorkloadRow:
    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    namespace: str
    spec: EffectiveSpec
    trace_headers: dict[str, str]
    attempt: int
    phase: Phase
    reason: str
    message: str
    sequence: int
    created_at: datetime
    podgroup_sequence: int = 0
    podgroup_signature: str = ""
    desired: Desired = "Running"
    resuming: bool = False
    delete_after: datetime | None = None
    preempted: bool = False
    preempted_pods: frozenset[str] = frozenset()
    unschedulable: tuple[str, str] | None = None

    @property
    def info(self) -> WorkloadInfo:
        return WorkloadInfo(
            workload_id=self.workload_id, name=self.name, project=self.project,
            workload_type=self.workload_type, pods=self.spec.pods, min_pods=self.spec.min_pods,
            backoff_limit=self.spec.backoff_limit, attempt=self.attempt,
            desired=self.desired, resuming=self.resuming,
            completions=self.spec.completions, framework=self.spec.distributed_framework,
            terminate_after_preemption=self.spec.terminate_after_preemption,
            preempted=self.preempted, preempted_pods=self.preempted_pods,
            unschedulable=self.unschedulable,
        )


def _spec(r: asyncpg.Record) -> EffectiveSpec:
    """The recorded spec, with the replicas its autoscaler set (0 included: a copy is not
    validated again, and a server scaled to zero has no pod)."""
    spec = EffectiveSpec.model_validate(r["spec"])
    replicas = r.get("replicas")
    return spec if replicas is None else spec.model_copy(update={"pods": replicas})


def _row(r: asyncpg.Record) -> WorkloadRow:
    return WorkloadRow(
        workload_id=r["workload_id"], name=r["name"], project=r["project"],
        workload_type=WorkloadType(r["workload_type"]), namespace=r["namespace"],
        spec=_spec(r), trace_headers=dict(r["trace_headers"]),
        attempt=r["attempt"], phase=Phase(r["phase"]), reason=r["reason"],
        message=r["message"], sequence=r["sequence"], created_at=r["created_at"],
        podgroup_sequence=r["podgroup_sequence"], podgroup_signature=r["podgroup_signature"],
        desired=r["desired"], resuming=r["resuming"], delete_after=r["delete_after"],
        preempted=r["preempted"], preempted_pods=frozenset(r["preempted_pods"]),
        unschedulable=((r["unschedulable_code"], r["unschedulable_message"])
                       if r["unschedulable_code"] else None),
    )


async def insert_workload(conn: asyncpg.Connection, event: WorkloadSubmitted, namespace: str,
                          trace_headers: dict[str, str], reason: str, message: str) -> bool:
    """False when the workload is already known (a redelivered submission)."""
    status = await conn.execute(
        "INSERT INTO workloads (workload_id, name, project, workload_type, namespace, spec,"
        " trace_headers, phase, reason, message, sequence, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11)"
        " ON CONFLICT (workload_id) DO NOTHING",
        event.workload_id, event.name, event.project, event.workload_type.value, namespace,
        event.spec.model_dump(mode="json"), trace_headers, Phase.CREATING.value, reason,
        message, event.created_at,
    )
    return status.endswith(" 1")


async def insert_workloads(conn: asyncpg.Connection, rows: list[WorkloadRow],
                           events: list[tuple[str, OutboxItem]]) -> set[str]:
    """Many submitted workloads as first recorded, each with its events (`(workload_id,
    item)`) in the outbox, in one statement (one round trip, atomic); the ids of those
    inserted now. One known already (a redelivered submission) is left as it was, with no
    event."""
    subjects_, payloads, headers, msg_ids = outbox_columns([item for _, item in events])
    # As in record_unless_moved: the events' INSERT reads the workloads' RETURNING.
    inserted = await conn.fetch(
        "WITH inserted AS ("
        " INSERT INTO workloads (workload_id, name, project, workload_type, namespace, spec,"
        " trace_headers, phase, reason, message, sequence, created_at)"
        " SELECT w, n, p, t, ns, s::jsonb, h::jsonb, ph, r, m, q, c"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::timestamptz[])"
        " AS u(w, n, p, t, ns, s, h, ph, r, m, q, c)"
        " ON CONFLICT (workload_id) DO NOTHING RETURNING workload_id),"
        + _announcing("inserted", 13),
        [r.workload_id for r in rows], [r.name for r in rows], [r.project for r in rows],
        [r.workload_type.value for r in rows], [r.namespace for r in rows],
        [r.spec.model_dump_json() for r in rows], [json.dumps(r.trace_headers) for r in rows],
        [r.phase.value for r in rows], [r.reason for r in rows], [r.message for r in rows],
        [r.sequence for r in rows], [r.created_at for r in rows],
        [wid for wid, _ in events], subjects_, payloads, headers, msg_ids,
    )
    return {r["workload_id"] for r in inserted}


async def get_many(conn: asyncpg.Connection, workload_ids: list[str]) -> list[WorkloadRow]:
    rows = await conn.fetch("SELECT * FROM workloads WHERE workload_id = ANY($1::text[])",
                            workload_ids)
    return [_row(r) for r in rows]


async def namespace_of(conn: asyncpg.Connection, workload_id: str) -> str | None:
    return await conn.fetchval("SELECT namespace FROM workloads WHERE workload_id = $1",
                               workload_id)


async def get_for_update(conn: asyncpg.Connection, workload_id: str) -> WorkloadRow | None:
    r = await conn.fetchrow("SELECT * FROM workloads WHERE workload_id = $1 FOR UPDATE",
                            workload_id)
    return _row(r) if r else None


async def get(conn: asyncpg.Connection, workload_id: str) -> WorkloadRow | None:
    r = await conn.fetchrow("SELECT * FROM workloads WHERE workload_id = $1", workload_id)
    return _row(r) if r else None


async def active(conn: asyncpg.Connection) -> list[WorkloadRow]:
    """Workloads something can still happen to: unfinished, or finished and to be deleted."""
    rows = await conn.fetch(
        "SELECT * FROM workloads WHERE phase NOT IN ('Completed', 'Failed', 'Deleted')"
        " OR (phase <> 'Deleted' AND (desired = 'Deleted' OR delete_after IS NOT NULL))"
    )
    return [_row(r) for r in rows]


async def lingering(conn: asyncpg.Connection) -> list[WorkloadRow]:
    """Finished workloads whose last announced pod group still had pods holding resources:
    their going is still to be announced (and their leftover pods deleted)."""
    rows = await conn.fetch(
        "SELECT * FROM workloads WHERE phase IN ('Completed', 'Failed') AND desired <> 'Deleted'"
        " AND EXISTS (SELECT 1 FROM unnest(string_to_array(podgroup_signature, ',')) AS pod"
        " WHERE pod <> '' AND pod NOT LIKE '%/done')"
    )
    return [_row(r) for r in rows]


async def set_delete_after(conn: asyncpg.Connection, workload_id: str,
                           when: datetime | None) -> None:
    await conn.execute("UPDATE workloads SET delete_after = $2 WHERE workload_id = $1",
                       workload_id, when)


async def lock_for_record(conn: asyncpg.Connection, workload_ids: list[str]
                          ) -> dict[str, Recorded]:
    """Lock many workloads' rows at once (in key order, so two lockers never deadlock) and
    read only what recording needs: no spec to validate."""
    rows = await conn.fetch(
        "SELECT workload_id, phase, sequence, desired, resuming, preempted, podgroup_sequence,"
        " podgroup_signature FROM workloads WHERE workload_id = ANY($1::text[])"
        " ORDER BY workload_id FOR UPDATE",
        workload_ids,
    )
    return {r["workload_id"]: Recorded(
        Phase(r["phase"]), r["sequence"], r["desired"], r["resuming"], r["preempted"],
        r["podgroup_sequence"], r["podgroup_signature"]) for r in rows}


async def record_many(conn: asyncpg.Connection, progress: list[Progress]) -> None:
    """Many workloads' new phase, sequence, attempt and pod group, in one statement."""
    if not progress:
        return
    await conn.execute(
        "UPDATE workloads AS w SET phase = COALESCE(u.phase, w.phase),"
        " reason = COALESCE(u.reason, w.reason), message = COALESCE(u.message, w.message),"
        " sequence = u.sequence, attempt = u.attempt, podgroup_sequence = u.group_sequence,"
        " podgroup_signature = u.signature, updated_at = now()"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],"
        " $7::int[], $8::text[])"
        " AS u(workload_id, phase, reason, message, sequence, attempt, group_sequence, signature)"
        " WHERE w.workload_id = u.workload_id",
        [p.workload_id for p in progress],
        [p.phase.value if p.phase is not None else None for p in progress],
        [p.reason for p in progress], [p.message for p in progress],
        [p.sequence for p in progress], [p.attempt for p in progress],
        [p.podgroup_sequence for p in progress], [p.podgroup_signature for p in progress],
    )


async def record_unless_moved(conn: asyncpg.Connection,
                              changes: list[tuple[Recorded, Progress]],
                              events: list[tuple[str, OutboxItem]]) -> set[str]:
    """Many workloads' new recorded state with their events (`(workload_id, item)`) in the
    outbox, in one statement, so in one round trip and atomically; for each workload only
    while its row still holds what `Recorded` says: nobody recorded, asked or preempted
    anything since. The ids recorded; the others are left as they were, with no event."""
    subjects_, payloads, headers, msg_ids = outbox_columns([item for _, item in events])
    # A data-modifying CTE runs whether or not the query reads it; the events' INSERT reads
    # the UPDATE's RETURNING, so only workloads recorded now announce anything, and their
    # outbox ids are drawn in the order given (ORDER BY the ordinality).
    rows = await conn.fetch(
        "WITH recorded AS ("
        " UPDATE workloads AS w SET phase = COALESCE(u.phase, w.phase),"
        " reason = COALESCE(u.reason, w.reason), message = COALESCE(u.message, w.message),"
        " sequence = u.sequence, attempt = u.attempt, podgroup_sequence = u.group_sequence,"
        " podgroup_signature = u.signature, updated_at = now()"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],"
        " $7::int[], $8::text[], $9::text[], $10::int[], $11::text[], $12::bool[],"
        " $13::bool[], $14::int[], $15::text[])"
        " AS u(workload_id, phase, reason, message, sequence, attempt, group_sequence,"
        " signature, was_phase, was_sequence, was_desired, was_resuming, was_preempted,"
        " was_group_sequence, was_signature)"
        " WHERE w.workload_id = u.workload_id AND w.phase = u.was_phase"
        " AND w.sequence = u.was_sequence AND w.desired = u.was_desired"
        " AND w.resuming = u.was_resuming AND w.preempted = u.was_preempted"
        " AND w.podgroup_sequence = u.was_group_sequence"
        " AND w.podgroup_signature = u.was_signature"
        " RETURNING w.workload_id),"
        + _announcing("recorded", 16),
        [p.workload_id for _, p in changes],
        [p.phase.value if p.phase is not None else None for _, p in changes],
        [p.reason for _, p in changes], [p.message for _, p in changes],
        [p.sequence for _, p in changes], [p.attempt for _, p in changes],
        [p.podgroup_sequence for _, p in changes], [p.podgroup_signature for _, p in changes],
        [r.phase.value for r, _ in changes], [r.sequence for r, _ in changes],
        [r.desired for r, _ in changes], [r.resuming for r, _ in changes],
        [r.preempted for r, _ in changes], [r.podgroup_sequence for r, _ in changes],
        [r.podgroup_signature for r, _ in changes],
        [wid for wid, _ in events], subjects_, payloads, headers, msg_ids,
    )
    return {r["workload_id"] for r in rows}


async def record_phase(conn: asyncpg.Connection, workload_id: str, *, phase: Phase, reason: str,
                       message: str, sequence: int, attempt: int) -> None:
    await conn.execute(
        "UPDATE workloads SET phase = $2, reason = $3, message = $4, sequence = $5,"
        " attempt = $6, updated_at = now() WHERE workload_id = $1",
        workload_id, phase.value, reason, message, sequence, attempt,
    )


async def set_desired(conn: asyncpg.Connection, workload_id: str, desired: str,
                      resuming: bool) -> None:
    await conn.execute("UPDATE workloads SET desired = $2, resuming = $3, updated_at = now()"
                       " WHERE workload_id = $1", workload_id, desired, resuming)


async def set_preempted(conn: asyncpg.Connection, workload_id: str, preempted: bool,
                        pods: frozenset[str]) -> None:
    await conn.execute("UPDATE workloads SET preempted = $2, preempted_pods = $3,"
                       " updated_at = now() WHERE workload_id = $1",
                       workload_id, preempted, sorted(pods))


async def set_unschedulable(conn: asyncpg.Connection, workload_id: str, code: str,
                            message: str) -> None:
    await conn.execute("UPDATE workloads SET unschedulable_code = $2, unschedulable_message = $3,"
                       " updated_at = now() WHERE workload_id = $1", workload_id, code, message)


async def set_replicas(conn: asyncpg.Connection, workload_id: str, replicas: int) -> None:
    """An inference server's replica count, as its autoscaler set it (kept over a restart)."""
    await conn.execute("UPDATE workloads SET replicas = $2, updated_at = now()"
                       " WHERE workload_id = $1", workload_id, replicas)


# scheduling rules and usage ------------------------------------------------------------------

@dataclass(frozen=True)
class OrgUnitRules:
    """A project or department's scheduling rules as kept (camelCase keys, as on the wire)."""

    kind: str  # "project" or "department"
    org_id: str
    name: str
    department_id: str | None
    rules: dict[str, int]


async def org_rules(conn: asyncpg.Connection) -> list[OrgUnitRules]:
    return [OrgUnitRules(r["kind"], r["org_id"], r["name"], r["department_id"], r["rules"])
            for r in await conn.fetch("SELECT * FROM org_rules")]


async def save_org_rules(conn: asyncpg.Connection, unit: OrgUnitRules) -> None:
    await conn.execute(
        "INSERT INTO org_rules (kind, org_id, name, department_id, rules)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, org_id) DO UPDATE SET"
        " name = $3, department_id = $4, rules = $5",
        unit.kind, unit.org_id, unit.name, unit.department_id, unit.rules)


async def delete_org_rules(conn: asyncpg.Connection, kind: str, org_id: str) -> None:
    await conn.execute("DELETE FROM org_rules WHERE kind = $1 AND org_id = $2", kind, org_id)


async def node_pools(conn: asyncpg.Connection) -> list[NodePoolChanged]:
    """The node pools' settings the node-level scheduler needs, as last heard."""
    return [NodePoolChanged(event_id="", name=r["name"], label_key=r["label_key"],
                            label_value=r["label_value"],
                            node_level_scheduler_enabled=r["node_level_scheduler_enabled"],
                            swap_enabled=r["swap_enabled"],
                            cpu_swap_memory_mib=r["cpu_swap_memory_mib"],
                            reserved_gpu_memory_for_swap_mib=r[
                                "reserved_gpu_memory_for_swap_mib"])
            for r in await conn.fetch("SELECT * FROM node_pool_settings")]


async def save_node_pool(conn: asyncpg.Connection, pool: NodePoolChanged) -> None:
    if pool.deleted:
        await conn.execute("DELETE FROM node_pool_settings WHERE name = $1", pool.name)
        return
    await conn.execute(
        "INSERT INTO node_pool_settings (name, label_key, label_value,"
        " node_level_scheduler_enabled, swap_enabled, cpu_swap_memory_mib,"
        " reserved_gpu_memory_for_swap_mib) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (name) DO UPDATE SET label_key = $2, label_value = $3,"
        " node_level_scheduler_enabled = $4, swap_enabled = $5, cpu_swap_memory_mib = $6,"
        " reserved_gpu_memory_for_swap_mib = $7",
        pool.name, pool.label_key, pool.label_value, pool.node_level_scheduler_enabled,
        pool.swap_enabled, pool.cpu_swap_memory_mib, pool.reserved_gpu_memory_for_swap_mib)


async def usages(conn: asyncpg.Connection
                 ) -> tuple[dict[str, UsageState], dict[str, tuple[str, str]]]:
    """Every workload's usage as counted, and why a rule stopped those it stopped."""
    usage, stop_reasons = {}, {}
    for r in await conn.fetch("SELECT * FROM workload_usage"):
        usage[r["workload_id"]] = UsageState(r["running_seconds"], r["running_since"],
                                             r["idle_windows"], r["last_window_end"])
        if r["stop_reason"]:
            stop_reasons[r["workload_id"]] = (r["stop_reason"], r["stop_message"])
    return usage, stop_reasons


async def delete_usage(conn: asyncpg.Connection, workload_ids: list[str]) -> None:
    await conn.execute("DELETE FROM workload_usage WHERE workload_id = ANY($1)", workload_ids)


async def clear_stop_reason(conn: asyncpg.Connection, workload_id: str) -> None:
    await conn.execute("UPDATE workload_usage SET stop_reason = NULL, stop_message = NULL"
                       " WHERE workload_id = $1", workload_id)


async def set_stop_reason(conn: asyncpg.Connection, workload_id: str, reason: str,
                          message: str) -> None:
    await conn.execute(
        "INSERT INTO workload_usage (workload_id, stop_reason, stop_message)"
        " VALUES ($1, $2, $3) ON CONFLICT (workload_id) DO UPDATE SET"
        " stop_reason = $2, stop_message = $3, updated_at = now()",
        workload_id, reason, message)


async def save_stretches(conn: asyncpg.Connection,
                         stretches: list[tuple[str, UsageState]]) -> None:
    """Running stretches opened or closed: each workload's running time so far."""
    await conn.executemany(
        "INSERT INTO workload_usage (workload_id, running_seconds, running_since)"
        " VALUES ($1, $2, $3) ON CONFLICT (workload_id) DO UPDATE SET"
        " running_seconds = $2, running_since = $3, updated_at = now()",
        [(w, u.running_seconds, u.running_since) for w, u in stretches])


async def record_window(conn: asyncpg.Connection, workload_id: str, idle_windows: int,
                        window_end: datetime) -> bool:
    """The idle count at a window's end; False when a later window end is recorded already
    (another instance, or this one before a restart, took it)."""
    return bool(await conn.fetchval(
        "INSERT INTO workload_usage (workload_id, idle_windows, last_window_end)"
        " VALUES ($1, $2, $3) ON CONFLICT (workload_id) DO UPDATE SET"
        " idle_windows = $2, last_window_end = $3, updated_at = now()"
        " WHERE workload_usage.last_window_end IS NULL"
        " OR workload_usage.last_window_end < $3 RETURNING 1",
        workload_id, idle_windows, window_end))


def _announcing(written: str, first: int) -> str:
    """The end of a statement whose `written` clause returns the workload ids it wrote: their
    events queued in the outbox (parameters from `$first`: workload ids, then the columns of
    `outbox_columns`), in the order given, and those ids selected."""
    w, s, p, h, m = (f"${first + i}" for i in range(5))
    return (" announced AS ("
            " INSERT INTO outbox (subject, payload, headers, msg_id)"
            f" SELECT s, p, h::jsonb, m FROM unnest({w}::text[], {s}::text[], {p}::bytea[],"
            f" {h}::text[], {m}::text[]) WITH ORDINALITY AS o(workload_id, s, p, h, m, n)"
            f" WHERE o.workload_id IN (SELECT workload_id FROM {written}) ORDER BY n"
            " ON CONFLICT (msg_id) DO NOTHING)"
            f" SELECT workload_id FROM {written}")
