"""The metrics service's SQL, all of it. Functions run on the caller's connection and
transaction."""

import asyncpg

from fairway_metrics.domain import WorkloadView

_COLUMNS = (
    "id, project, workload_type, submitted_at, phase, phase_sequence, phase_changed_at,"
    " first_running_at, completed_at, failed_at, running_latency_observed,"
    " completed_latency_observed"
)


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
    return WorkloadView(**dict(row))


async def save_workload(conn: asyncpg.Connection, view: WorkloadView) -> None:
    await conn.execute(
        "UPDATE workloads SET submitted_at = $2, phase = $3, phase_sequence = $4,"
        " phase_changed_at = $5, first_running_at = $6, completed_at = $7, failed_at = $8,"
        " running_latency_observed = $9, completed_latency_observed = $10 WHERE id = $1",
        view.id, view.submitted_at, view.phase, view.phase_sequence, view.phase_changed_at,
        view.first_running_at, view.completed_at, view.failed_at, view.running_latency_observed,
        view.completed_latency_observed,
    )


async def count_by_phase_and_type(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT phase, workload_type, count(*) AS n FROM workloads WHERE phase IS NOT NULL"
        " GROUP BY phase, workload_type")
    return {(row["phase"], row["workload_type"]): row["n"] for row in rows}
