"""The metrics service's SQL, all of it. Functions run on the caller's connection and
transaction."""

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from fairway_metrics.core.projection import MODELS, Projection
from fairway_metrics.core.workloads import WorkloadView

_COLUMNS = (
    "id, project, workload_type, project_id, submitted_at, phase, phase_sequence,"
    " phase_changed_at, first_running_at, completed_at, failed_at, running_latency_observed,"
    " completed_latency_observed, gpus_requested, node_pools, placements, pending_seconds,"
    " running_seconds"
)


def _view(row: asyncpg.Record) -> WorkloadView:
    values = dict(row)
    values["node_pools"] = tuple(values["node_pools"])
    values["placements"] = tuple((node, float(gpus)) for node, gpus in values["placements"])
    return WorkloadView(**values)


async def lock_workload(conn: asyncpg.Connection, workload_id: str, project: str,
                        workload_type: str) -> WorkloadView:
    """The workload's projection, created empty if new, locked until the transaction ends.

    Creating the row first gives the lock something to hold: the submission and the phase
    consumers may handle the same workload at the same time.
    """
    await conn.execute(
        "INSERT INTO workloads (id, project, workload_type) VALUES ($1, $2, $3)"
        " ON CONFLICT (id) DO NOTHING", workload_id, project, workload_type)
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM workloads WHERE id = $1 FOR UPDATE",
                              workload_id)
    return _view(row)


async def save_workload(conn: asyncpg.Connection, view: WorkloadView) -> None:
    await conn.execute(
        "UPDATE workloads SET submitted_at = $2, phase = $3, phase_sequence = $4,"
        " phase_changed_at = $5, first_running_at = $6, completed_at = $7, failed_at = $8,"
        " running_latency_observed = $9, completed_latency_observed = $10, project_id = $11,"
        " workload_type = $12, gpus_requested = $13, node_pools = $14, placements = $15,"
        " pending_seconds = $16, running_seconds = $17 WHERE id = $1",
        view.id, view.submitted_at, view.phase, view.phase_sequence, view.phase_changed_at,
        view.first_running_at, view.completed_at, view.failed_at, view.running_latency_observed,
        view.completed_latency_observed, view.project_id, view.workload_type,
        view.gpus_requested, list(view.node_pools), [list(p) for p in view.placements],
        view.pending_seconds, view.running_seconds,
    )


async def put_current(conn: asyncpg.Connection, kind: str, key: str, sequence: int,
                      payload: dict) -> bool:
    """Keep the message as the current value of (kind, key) unless a newer one is kept.
    True when it became the current value."""
    status = await conn.execute(
        "INSERT INTO current_state (kind, key, sequence, payload) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (kind, key) DO UPDATE SET sequence = excluded.sequence,"
        " payload = excluded.payload WHERE current_state.sequence < excluded.sequence",
        kind, key, sequence, payload)
    return status.endswith(" 1")


async def forget_current(conn: asyncpg.Connection, kind: str, key: str) -> None:
    await conn.execute("DELETE FROM current_state WHERE kind = $1 AND key = $2", kind, key)


async def add_preemption(conn: asyncpg.Connection, decision_id: str, workload_id: str,
                         project: str, reason: str, decided_at: datetime) -> bool:
    status = await conn.execute(
        "INSERT INTO preemptions (decision_id, workload_id, project, reason, decided_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        decision_id, workload_id, project, reason, decided_at)
    return status.endswith(" 1")


async def add_dead_letter(conn: asyncpg.Connection, consumer: str, stream: str,
                          stream_sequence: int, failed_at: datetime) -> bool:
    status = await conn.execute(
        "INSERT INTO dead_letters (consumer, stream, stream_sequence, failed_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        consumer, stream, stream_sequence, failed_at)
    return status.endswith(" 1")


async def load(conn: asyncpg.Connection) -> Projection:
    """The whole projection, as the tables hold it."""
    projection = Projection()
    for row in await conn.fetch(f"SELECT {_COLUMNS} FROM workloads"):
        projection.workloads[row["id"]] = _view(row)
    for row in await conn.fetch("SELECT kind, key, payload FROM current_state"):
        model = MODELS.get(row["kind"])
        if model is not None:
            projection.put(row["kind"], row["key"], model.model_validate(row["payload"]))
    projection.preemptions = Counter({
        (r["project"], r["reason"]): r["n"] for r in await conn.fetch(
            "SELECT project, reason, count(*) AS n FROM preemptions GROUP BY project, reason")})
    projection.dead_letters = Counter({
        r["consumer"]: r["n"] for r in await conn.fetch(
            "SELECT consumer, count(*) AS n FROM dead_letters GROUP BY consumer")})
    return projection


async def add_samples(conn: asyncpg.Connection, at: datetime,
                      samples: Iterable[tuple[str, str, str, float]]) -> None:
    """(scope, scope id, metric, value) rows taken at `at`; a repeat of the same instant is
    ignored."""
    await conn.executemany(
        "INSERT INTO samples (scope, scope_id, metric, at, value) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT DO NOTHING",
        [(scope, scope_id, metric, at, value) for scope, scope_id, metric, value in samples])


async def drop_samples_before(conn: asyncpg.Connection, before: datetime) -> int:
    status = await conn.execute("DELETE FROM samples WHERE at < $1", before)
    return int(status.split()[-1])


async def read_samples(conn: asyncpg.Connection, scope: str, scope_id: str,
                       metrics: list[str], start: datetime, end: datetime
                       ) -> list[tuple[str, datetime, float]]:
    """(metric, time, value) of a scope's samples in [start, end], by metric then time."""
    rows = await conn.fetch(
        "SELECT metric, at, value FROM samples WHERE scope = $1 AND scope_id = $2"
        " AND metric = ANY($3::text[]) AND at BETWEEN $4 AND $5 ORDER BY metric, at",
        scope, scope_id, metrics, start, end)
    return [(row["metric"], row["at"], row["value"]) for row in rows]
