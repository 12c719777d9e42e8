"""The scheduler's view, kept by submission for the API: why a workload waits (its
phaseMessage while Pending) and each queue's fair share (projects' and departments' status)."""

import uuid
from typing import Any

import asyncpg

from fairway_contracts.events import QueueStatusChanged, SchedulingPending

# (kind, name, node pool) -> {"gpu": …, "cpu": …, "memory": …} fair shares; loaded at start,
# kept current by the queue-status handler.
FAIR_SHARES: dict[tuple[str, str, str], dict[str, float]] = {}


def fair_share(kind: str, name: str, pool: str) -> dict[str, float]:
    return dict(FAIR_SHARES.get((kind, name, pool), {"gpu": 0, "cpu": 0, "memory": 0}))


def pools_with_status(kind: str, name: str) -> list[str]:
    """The node pools the scheduler reports a queue of this unit in (where it has work)."""
    return sorted(pool for k, n, pool in FAIR_SHARES if k == kind and n == name)


def _shares(status: dict[str, Any]) -> dict[str, float]:
    return {r: float((status.get(r) or {}).get("fairShare", 0)) for r in ("gpu", "cpu", "memory")}


async def load(conn: asyncpg.Connection) -> None:
    for row in await conn.fetch("SELECT kind, name, node_pool, status FROM queue_status"):
        FAIR_SHARES[(row["kind"], row["name"], row["node_pool"])] = _shares(row["status"])


async def apply_queue_status(conn: asyncpg.Connection, event: QueueStatusChanged) -> bool:
    """Keep the newest status of each queue (older deliveries change nothing)."""
    status = event.model_dump(mode="json", by_alias=True)
    done = await conn.execute(
        "INSERT INTO queue_status (kind, name, node_pool, status, changed_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, name, node_pool) DO UPDATE"
        " SET status = EXCLUDED.status, changed_at = EXCLUDED.changed_at"
        " WHERE queue_status.changed_at <= EXCLUDED.changed_at",
        event.kind, event.name, event.node_pool, status, event.changed_at)
    if done.endswith(" 1"):
        FAIR_SHARES[(event.kind, event.name, event.node_pool)] = _shares(status)
        return True
    return False


async def apply_pending(conn: asyncpg.Connection, event: SchedulingPending) -> bool:
    """Record why a workload waits (or that it no longer does); older news is ignored."""
    try:
        wid = uuid.UUID(event.workload_id)
    except ValueError:
        return False
    done = await conn.execute(
        "UPDATE workloads SET scheduler_code = $2, scheduler_message = $3,"
        " scheduler_changed_at = $4 WHERE workload_id = $1"
        " AND (scheduler_changed_at IS NULL OR scheduler_changed_at <= $4)",
        wid, event.code if event.pending else None, event.message if event.pending else None,
        event.changed_at)
    return done.endswith(" 1")
