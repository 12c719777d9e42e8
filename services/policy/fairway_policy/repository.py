"""Policy's SQL: the `policies` table, one row per (scope, workload type). Evaluation stays pure:
rows are read here and handed to `policy_merge` as plain values."""

import uuid
from collections.abc import Iterable

import asyncpg

_COLUMNS = ("scope_type, scope_id, scope_name, defaults, rules, imposed, updated_by, "
            "updated_at")


async def lock_type(conn: asyncpg.Connection, workload_type: str) -> None:
    """Serialise policy writes per workload type (until the transaction ends), so two writes in
    one branch cannot both pass the one-level-per-field check."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fairway.policies.' || $1))",
                       workload_type)


async def own(conn: asyncpg.Connection, workload_type: str, scope_type: str,
              scope_id: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM policies WHERE workload_type = $1 AND scope_type = $2"
        " AND scope_id IS NOT DISTINCT FROM $3", workload_type, scope_type, scope_id)


async def branch(conn: asyncpg.Connection, workload_type: str, department_id: str | None,
                 project_ids: Iterable[str] = ()) -> list[asyncpg.Record]:
    """The cluster's policy, the department's and the given projects' (those that exist)."""
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM policies WHERE workload_type = $1 AND ("
        " scope_type = 'cluster'"
        " OR (scope_type = 'department' AND scope_id = $2)"
        " OR (scope_type = 'project' AND scope_id = ANY($3::text[])))",
        workload_type, department_id, list(project_ids))


async def every(conn: asyncpg.Connection, workload_type: str) -> list[asyncpg.Record]:
    """Every scope's policy for the type: the cluster is in every branch."""
    return await conn.fetch(f"SELECT {_COLUMNS} FROM policies WHERE workload_type = $1",
                            workload_type)


async def save(conn: asyncpg.Connection, workload_type: str, scope_type: str,
               scope_id: str | None, scope_name: str | None, document: dict,
               updated_by: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO policies (id, scope_type, scope_id, scope_name, workload_type, defaults,"
        " rules, imposed, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (scope_type, scope_id, workload_type) DO UPDATE SET"
        " scope_name = EXCLUDED.scope_name, defaults = EXCLUDED.defaults,"
        " rules = EXCLUDED.rules, imposed = EXCLUDED.imposed,"
        f" updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_COLUMNS}",
        uuid.uuid4(), scope_type, scope_id, scope_name, workload_type,
        document.get("defaults") or {}, document.get("rules") or {},
        document.get("imposed") or {}, updated_by)


async def delete(conn: asyncpg.Connection, workload_type: str, scope_type: str,
                 scope_id: str | None) -> bool:
    done = await conn.execute(
        "DELETE FROM policies WHERE workload_type = $1 AND scope_type = $2"
        " AND scope_id IS NOT DISTINCT FROM $3", workload_type, scope_type, scope_id)
    return done.endswith(" 1")
