"""Lifecycle's SQL: the workloads it drives and the phase it last published for each."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_contracts.events import WorkloadSubmitted
from fairway_lifecycle.fold import WorkloadInfo


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
    desired: str = "Running"
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
            desired=self.desired, resuming=self.resuming,  # type: ignore[arg-type]
            completions=self.spec.completions, framework=self.spec.distributed_framework,
            terminate_after_preemption=self.spec.terminate_after_preemption,
            preempted=self.preempted, preempted_pods=self.preempted_pods,
            unschedulable=self.unschedulable,
        )


def _row(r: asyncpg.Record) -> WorkloadRow:
    return WorkloadRow(
        workload_id=r["workload_id"], name=r["name"], project=r["project"],
        workload_type=WorkloadType(r["workload_type"]), namespace=r["namespace"],
        spec=EffectiveSpec.model_validate(r["spec"]), trace_headers=dict(r["trace_headers"]),
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


@dataclass
class Recorded:
    """The columns recording a workload's changes reads, its row locked."""

    phase: Phase
    sequence: int
    desired: str
    resuming: bool
    preempted: bool
    podgroup_sequence: int
    podgroup_signature: str


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


@dataclass
class Progress:
    """A workload's new recorded state; phase, reason and message None when unchanged."""

    workload_id: str
    phase: Phase | None
    reason: str | None
    message: str | None
    sequence: int
    attempt: int
    podgroup_sequence: int
    podgroup_signature: str


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


async def record_phase(conn: asyncpg.Connection, workload_id: str, *, phase: Phase, reason: str,
                       message: str, sequence: int, attempt: int) -> None:
    await conn.execute(
        "UPDATE workloads SET phase = $2, reason = $3, message = $4, sequence = $5,"
        " attempt = $6, updated_at = now() WHERE workload_id = $1",
        workload_id, phase.value, reason, message, sequence, attempt,
    )


def as_dict(row: WorkloadRow) -> dict[str, Any]:
    return {"workloadId": row.workload_id, "phase": row.phase.value, "attempt": row.attempt}


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
