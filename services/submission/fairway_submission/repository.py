"""Submission's SQL: settings, users, projects, the workload view and its phase history."""

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from fairway_contracts import Phase
from fairway_contracts.events import PhaseChanged


async def get_setting(conn: asyncpg.Connection, key: str) -> str | None:
    return await conn.fetchval("SELECT value FROM settings WHERE key = $1", key)


async def put_setting_if_absent(conn: asyncpg.Connection, key: str, value: str) -> str:
    await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       key, value)
    return await get_setting(conn, key)


async def get_user(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM users WHERE username = $1", username)


async def create_user(conn: asyncpg.Connection, username: str, password_hash: str,
                      role: str) -> bool:
    status = await conn.execute(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)"
        " ON CONFLICT (username) DO NOTHING", username, password_hash, role)
    return status.endswith(" 1")


async def ensure_project(conn: asyncpg.Connection, name: str) -> tuple[asyncpg.Record, bool]:
    created = await conn.fetchrow(
        "INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING *", name)
    if created:
        return created, True
    return await conn.fetchrow("SELECT * FROM projects WHERE name = $1", name), False


async def list_projects(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM projects ORDER BY id")


async def get_project(conn: asyncpg.Connection, project_id: str) -> asyncpg.Record | None:
    if not project_id.isdigit():
        return None
    return await conn.fetchrow("SELECT * FROM projects WHERE id = $1", int(project_id))


async def insert_workload(conn: asyncpg.Connection, *, workload_id: uuid.UUID, name: str,
                          project: asyncpg.Record, workload_type: str, submitted: dict,
                          effective: dict, created_by: str, created_at: datetime) -> bool:
    status = await conn.execute(
        "INSERT INTO workloads (workload_id, name, project_id, project, workload_type,"
        " submitted_spec, effective_spec, created_by, created_at, pending_since)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        " ON CONFLICT (project_id, name) DO NOTHING",
        workload_id, name, project["id"], project["name"], workload_type, submitted, effective,
        created_by, created_at)
    return status.endswith(" 1")


async def get_workload(conn: asyncpg.Connection, workload_id: str) -> asyncpg.Record | None:
    try:
        wid = uuid.UUID(workload_id)
    except ValueError:
        return None
    return await conn.fetchrow("SELECT * FROM workloads WHERE workload_id = $1", wid)


async def find_workload_by_name(conn: asyncpg.Connection, name: str, project_id: int | None
                                ) -> list[asyncpg.Record]:
    if project_id is None:
        return await conn.fetch("SELECT * FROM workloads WHERE name = $1", name)
    return await conn.fetch("SELECT * FROM workloads WHERE name = $1 AND project_id = $2",
                            name, project_id)


async def list_workloads(conn: asyncpg.Connection, filters: list[tuple[str, str, str]],
                         sort_column: str, descending: bool, offset: int, limit: int
                         ) -> tuple[list[asyncpg.Record], int]:
    where, args = [], []
    for column, op, value in filters:
        args.append(value)
        n = len(args)
        if op == "==":
            where.append(f"{column} = ${n}")
        elif op == "!=":
            where.append(f"{column} <> ${n}")
        elif op == "=@":
            args[-1] = f"%{value}%"
            where.append(f"{column}::text ILIKE ${n}")
        elif op == ">=":
            where.append(f"{column}::text >= ${n}")
        else:
            where.append(f"{column}::text <= ${n}")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = await conn.fetchval(f"SELECT count(*) FROM workloads {clause}", *args)
    order = "DESC" if descending else "ASC"
    rows = await conn.fetch(
        f"SELECT * FROM workloads {clause} ORDER BY {sort_column} {order}, workload_id"
        f" OFFSET {int(offset)} LIMIT {int(limit)}", *args)
    return rows, total


async def apply_phase(conn: asyncpg.Connection, event: PhaseChanged) -> bool:
    """Record a transition in the history and, when it is newer than what the view shows,
    in the view. False when this transition was recorded before (a redelivery)."""
    inserted = await conn.execute(
        "INSERT INTO workload_events (workload_id, sequence, previous_phase, phase, reason,"
        " message, time) SELECT $1, $2, $3, $4, $5, $6, $7"
        " WHERE EXISTS (SELECT 1 FROM workloads WHERE workload_id = $1)"
        " ON CONFLICT DO NOTHING",
        uuid.UUID(event.workload_id), event.sequence,
        event.previous_phase.value if event.previous_phase else None, event.phase.value,
        event.reason, event.message, event.time)
    if not inserted.endswith(" 1"):
        return False
    running = event.phase in (Phase.RUNNING, Phase.DEGRADED)
    pending = event.phase in (Phase.PENDING, Phase.CREATING)
    pods: list[dict[str, Any]] = [p.model_dump(mode="json", by_alias=True) for p in event.pods]
    await conn.execute(
        """
        UPDATE workloads SET
            total_running_seconds = total_running_seconds + CASE WHEN running_since IS NULL
                THEN 0 ELSE GREATEST(0, EXTRACT(EPOCH FROM ($5::timestamptz - running_since))) END,
            total_pending_seconds = total_pending_seconds + CASE WHEN pending_since IS NULL
                THEN 0 ELSE GREATEST(0, EXTRACT(EPOCH FROM ($5::timestamptz - pending_since))) END,
            running_since = CASE WHEN $6 THEN $5::timestamptz ELSE NULL END,
            pending_since = CASE WHEN $7 THEN $5::timestamptz ELSE NULL END,
            phase = $2, phase_reason = $3, phase_message = $4, phase_sequence = $8,
            phase_updated_at = $5, pods = $9
        WHERE workload_id = $1 AND phase_sequence < $8
        """,
        uuid.UUID(event.workload_id), event.phase.value, event.reason, event.message,
        event.time, running, pending, event.sequence, pods)
    return True


async def phase_history(conn: asyncpg.Connection, workload_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM workload_events WHERE workload_id = $1 ORDER BY sequence", workload_id)
