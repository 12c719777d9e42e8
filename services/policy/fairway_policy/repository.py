"""Policy's SQL, all of it: the `policies` table, one row per (scope, workload type). Rows are
read here and handed on as plain values (`StoredPolicy`), so the core never sees a record.
Functions run on the caller's connection and transaction."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from fairway_policy.core.policies import SECTIONS, Scope

_COLUMNS = ("scope_type, scope_id, scope_name, defaults, rules, imposed, updated_by, "
            "updated_at")


@dataclass(frozen=True)
class StoredPolicy:
    """One scope's policy as stored: its document (defaults, rules, imposed) and who saved it
    when."""

    scope: Scope
    document: dict[str, Any]
    updated_by: str
    updated_at: datetime


def _stored(row: asyncpg.Record) -> StoredPolicy:
    return StoredPolicy(
        scope=Scope(row["scope_type"], row["scope_id"], row["scope_name"]),
        document={section: row[section] or {} for section in SECTIONS},
        updated_by=row["updated_by"], updated_at=row["updated_at"])


async def lock_type(conn: asyncpg.Connection, workload_type: str) -> None:
    """Serialise policy writes per workload type (until the transaction ends), so two writes in
    one branch cannot both pass the one-level-per-field check."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fairway.policies.' || $1))",
                       workload_type)


async def own(conn: asyncpg.Connection, workload_type: str, scope: Scope
              ) -> StoredPolicy | None:
    """The scope's own policy, if it has one."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM policies WHERE workload_type = $1 AND scope_type = $2"
        " AND scope_id IS NOT DISTINCT FROM $3", workload_type, scope.kind, scope.id)
    return _stored(row) if row is not None else None


async def branch(conn: asyncpg.Connection, workload_type: str, department_id: str | None,
                 project_ids: Iterable[str] = ()) -> list[StoredPolicy]:
    """The cluster's policy, the department's and the given projects' (those that exist)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM policies WHERE workload_type = $1 AND ("
        " scope_type = 'cluster'"
        " OR (scope_type = 'department' AND scope_id = $2)"
        " OR (scope_type = 'project' AND scope_id = ANY($3::text[])))",
        workload_type, department_id, list(project_ids))
    return [_stored(row) for row in rows]


async def every(conn: asyncpg.Connection, workload_type: str) -> list[StoredPolicy]:
    """Every scope's policy for the type: the cluster is in every branch."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM policies WHERE workload_type = $1",
                            workload_type)
    return [_stored(row) for row in rows]


async def save(conn: asyncpg.Connection, workload_type: str, scope: Scope,
               document: dict[str, Any], updated_by: str) -> StoredPolicy:
    row = await conn.fetchrow(
        "INSERT INTO policies (id, scope_type, scope_id, scope_name, workload_type, defaults,"
        " rules, imposed, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (scope_type, scope_id, workload_type) DO UPDATE SET"
        " scope_name = EXCLUDED.scope_name, defaults = EXCLUDED.defaults,"
        " rules = EXCLUDED.rules, imposed = EXCLUDED.imposed,"
        f" updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_COLUMNS}",
        uuid.uuid4(), scope.kind, scope.id, scope.name, workload_type,
        document.get("defaults") or {}, document.get("rules") or {},
        document.get("imposed") or {}, updated_by)
    return _stored(row)


async def delete(conn: asyncpg.Connection, workload_type: str, scope: Scope) -> bool:
    done = await conn.execute(
        "DELETE FROM policies WHERE workload_type = $1 AND scope_type = $2"
        " AND scope_id IS NOT DISTINCT FROM $3", workload_type, scope.kind, scope.id)
    return done.endswith(" 1")
