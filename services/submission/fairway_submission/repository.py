"""Submission's SQL: settings, users and access rules, the organisation, the workload view and
its phase history, and the scheduler's view (why a workload waits, each queue's status)."""

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from fairway_contracts import Phase
from fairway_contracts.events import (
    PhaseChanged,
    PodGroupChanged,
    QueueStatusChanged,
    SchedulingPending,
    ServingChanged,
    ThirdPartyWorkloadChanged,
)
from fairway_contracts.workloads import RULE_STOP_REASONS

_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _is_id(value: str) -> bool:
    """Plain ASCII digits that fit a bigint. Not `str.isdigit()` alone: it takes "²" and
    other Unicode digits that `int()` then refuses."""
    return value.isascii() and value.isdigit() and len(value) <= 18


def _id(value: str) -> int | None:
    """A path or body id as a bigint; None when it cannot be one (so: not found)."""
    return int(value) if _is_id(value) else None


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


async def set_password(conn: asyncpg.Connection, username: str, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE username = $1",
                       username, password_hash)


async def ensure_project(conn: asyncpg.Connection, name: str) -> tuple[asyncpg.Record, bool]:
    created = await conn.fetchrow(
        "INSERT INTO projects (name, department_id) SELECT $1, id FROM departments"
        " WHERE name = 'default' ON CONFLICT (name) DO NOTHING RETURNING *", name)
    if created:
        return created, True
    return await conn.fetchrow("SELECT * FROM projects WHERE name = $1", name), False


async def list_projects(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM projects ORDER BY id")


async def get_project(conn: asyncpg.Connection, project_id: str) -> asyncpg.Record | None:
    if _id(project_id) is None:
        return None
    return await conn.fetchrow("SELECT * FROM projects WHERE id = $1", _id(project_id))


_INSERT_WORKLOAD = (
    "INSERT INTO workloads (workload_id, name, project_id, project, workload_type,"
    " submitted_spec, effective_spec, created_by, created_at, pending_since)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
    " ON CONFLICT (project_id, name) DO NOTHING RETURNING *")


async def insert_workload(conn: asyncpg.Connection, *, workload_id: uuid.UUID, name: str,
                          project: asyncpg.Record, workload_type: str, submitted: dict,
                          effective: dict, created_by: str, created_at: datetime
                          ) -> asyncpg.Record | None:
    """The new workload's row; None when the project already has a workload of that name."""
    return await conn.fetchrow(
        _INSERT_WORKLOAD, workload_id, name, project["id"], project["name"], workload_type,
        submitted, effective, created_by, created_at)


async def insert_announced_workload(
        conn: asyncpg.Connection, *, workload_id: uuid.UUID, name: str, project: Any,
        workload_type: str, submitted: dict, effective: dict, created_by: str,
        created_at: datetime, announcement: tuple[str, bytes, dict[str, str], str]
) -> asyncpg.Record | None:
    """`insert_workload` and the outbox row that announces it (`fairway_store.outbox_row`) in
    one statement: both or neither, in one round trip without a transaction block. None (and
    no outbox row) when the project already has a workload of that name."""
    return await conn.fetchrow(
        f"WITH w AS ({_INSERT_WORKLOAD}), o AS ("
        " INSERT INTO outbox (subject, payload, headers, msg_id)"
        " SELECT $10::text, $11::bytea, $12::jsonb, $13::text FROM w"
        " ON CONFLICT (msg_id) DO NOTHING) SELECT * FROM w",
        workload_id, name, project["id"], project["name"], workload_type, submitted, effective,
        created_by, created_at, *announcement)


def _workload_uuid(value: str) -> uuid.UUID | None:
    """A workload id in its one canonical spelling (8-4-4-4-12 hex digits, either case); not
    what `uuid.UUID` also takes (braces, "urn:uuid:", no hyphens, non-ASCII digits)."""
    return uuid.UUID(value) if _CANONICAL_UUID.fullmatch(value) else None


async def get_workload(conn: asyncpg.Connection, workload_id: str) -> asyncpg.Record | None:
    wid = _workload_uuid(workload_id)
    if wid is None:
        return None
    return await conn.fetchrow("SELECT * FROM workloads WHERE workload_id = $1", wid)


async def list_workloads(conn: asyncpg.Connection, filters: list[tuple[str, str, str]],
                         sort_column: str, descending: bool, offset: int, limit: int,
                         scope: tuple[list[int], list[int]] | None = None
                         ) -> tuple[list[asyncpg.Record], int]:
    """`scope`: (projects whose every workload may be listed, projects where only
    inferences); None: everything."""
    where: list[str] = []
    args: list[Any] = []
    if scope is not None:
        args += [scope[0], scope[1]]
        where.append("(project_id = ANY($1::bigint[]) OR (project_id = ANY($2::bigint[])"
                     " AND workload_type = 'inference'))")
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


_INSERT_TRANSITION = (
    "INSERT INTO workload_events (workload_id, sequence, previous_phase, phase, reason,"
    " message, time) SELECT $1, $2, $3, $4, $5, $6, $7"
    " WHERE EXISTS (SELECT 1 FROM workloads WHERE workload_id = $1)"
    " ON CONFLICT DO NOTHING")
# Only a newer transition moves the view (so a redelivery or a late older one changes
# nothing); the running and pending clocks add up what the transition ends.
_APPLY_TRANSITION = """
    UPDATE workloads SET
        total_running_seconds = total_running_seconds + CASE WHEN running_since IS NULL
            THEN 0 ELSE GREATEST(0, EXTRACT(EPOCH FROM ($5::timestamptz - running_since))) END,
        total_pending_seconds = total_pending_seconds + CASE WHEN pending_since IS NULL
            THEN 0 ELSE GREATEST(0, EXTRACT(EPOCH FROM ($5::timestamptz - pending_since))) END,
        running_since = CASE WHEN $6 THEN $5::timestamptz ELSE NULL END,
        pending_since = CASE WHEN $7 THEN $5::timestamptz ELSE NULL END,
        phase = $2, phase_reason = $3, phase_message = $4, phase_sequence = $8,
        phase_updated_at = $5,
        pods = CASE WHEN pods_at IS NULL OR $5 >= pods_at THEN $9 ELSE pods END,
        pods_at = GREATEST(pods_at, $5)
    WHERE workload_id = $1 AND phase_sequence < $8
    """
# A scheduling rule stopped it (lifecycle's decision, not an API call): the desired phase
# follows, unless the view already shows something newer.
_RULE_STOPPED = ("UPDATE workloads SET desired_phase = 'Stopped' WHERE workload_id = $1"
                 " AND desired_phase = 'Running' AND phase_sequence <= $2")


def _transition_args(event: PhaseChanged) -> tuple:
    return (uuid.UUID(event.workload_id), event.sequence,
            event.previous_phase.value if event.previous_phase else None, event.phase.value,
            event.reason, event.message, event.time)


def _view_args(event: PhaseChanged) -> tuple:
    running = event.phase in (Phase.RUNNING, Phase.DEGRADED)
    pending = event.phase in (Phase.PENDING, Phase.CREATING)
    pods: list[dict[str, Any]] = [p.model_dump(mode="json", by_alias=True) for p in event.pods]
    return (uuid.UUID(event.workload_id), event.phase.value, event.reason, event.message,
            event.time, running, pending, event.sequence, pods)


def _rule_stopped(event: PhaseChanged) -> bool:
    return event.phase in (Phase.STOPPING, Phase.STOPPED) and event.reason in RULE_STOP_REASONS


async def apply_phase(conn: asyncpg.Connection, event: PhaseChanged) -> bool:
    """Record a transition in the history and, when it is newer than what the view shows,
    in the view. False when this transition was recorded before (a redelivery)."""
    inserted = await conn.execute(_INSERT_TRANSITION, *_transition_args(event))
    if not inserted.endswith(" 1"):
        return False
    await conn.execute(_APPLY_TRANSITION, *_view_args(event))
    if _rule_stopped(event):
        await conn.execute(_RULE_STOPPED, uuid.UUID(event.workload_id), event.sequence)
    return True


async def apply_phases(conn: asyncpg.Connection, events: list[PhaseChanged]) -> None:
    """`apply_phase` for many transitions, in the order given, in one round trip and one
    statement (so atomic on its own; `apply_phase_batch`, migration 009). The same result as one
    by one: the view's guard on the sequence skips what one by one would have skipped, and the
    clocks add up in the same order."""
    if not events:
        return
    ids, sequences, previous, phases, reasons, messages, times = zip(
        *(_transition_args(e) for e in events), strict=True)
    views = [_view_args(e) for e in events]
    await conn.execute(
        "SELECT apply_phase_batch($1::uuid[], $2::integer[], $3::text[], $4::text[],"
        " $5::text[], $6::text[], $7::timestamptz[], $8::boolean[], $9::boolean[],"
        " $10::text[]::jsonb[], $11::boolean[])",
        ids, sequences, previous, phases, reasons, messages, times,
        # pods as JSON text each: a list of lists would go as a two-dimensional array
        [v[5] for v in views], [v[6] for v in views], [json.dumps(v[8]) for v in views],
        [_rule_stopped(e) for e in events])


async def set_desired_phase(conn: asyncpg.Connection, workload_id: uuid.UUID,
                            desired: str) -> None:
    await conn.execute("UPDATE workloads SET desired_phase = $2 WHERE workload_id = $1",
                       workload_id, desired)


async def phase_history(conn: asyncpg.Connection, workload_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM workload_events WHERE workload_id = $1 ORDER BY sequence", workload_id)


# access -------------------------------------------------------------------------------------

async def rules_of(conn: asyncpg.Connection, subject_type: str, subject_id: str
                   ) -> list[asyncpg.Record]:
    """A subject's own rules, and for a user those of its groups."""
    return await conn.fetch(
        "SELECT * FROM access_rules WHERE (subject_type = $1 AND subject_id = $2)"
        " OR ($1 = 'user' AND subject_type = 'group' AND subject_id IN"
        "     (SELECT jsonb_array_elements_text(groups) FROM users WHERE username = $2))"
        " ORDER BY id", subject_type, subject_id)


async def set_groups(conn: asyncpg.Connection, username: str, groups: list[str]) -> None:
    await conn.execute("UPDATE users SET groups = $2 WHERE username = $1", username, groups)


async def project_departments(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT id, department_id FROM projects")
    return {str(r["id"]): str(r["department_id"]) for r in rows}


async def subject_exists(conn: asyncpg.Connection, kind: str, subject: str) -> bool:
    if kind == "service-account":
        sql = "SELECT 1 FROM service_accounts WHERE client_id = $1"
    else:
        sql = "SELECT 1 FROM users WHERE username = $1"
    return await conn.fetchval(sql, subject) is not None


async def list_users(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, username, groups, created_at FROM users ORDER BY id")


async def get_user_by_id(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    if _id(user_id) is None:
        return None
    return await conn.fetchrow("SELECT id, username, groups, created_at FROM users"
                               " WHERE id = $1", _id(user_id))


async def delete_user(conn: asyncpg.Connection, user_id: int, username: str) -> None:
    await conn.execute("DELETE FROM access_rules WHERE subject_type = 'user'"
                       " AND subject_id = $1", username)
    await conn.execute("DELETE FROM users WHERE id = $1", user_id)


async def create_service_account(conn: asyncpg.Connection, name: str, client_id: str,
                                 secret_hash: str, created_by: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "INSERT INTO service_accounts (name, client_id, secret_hash, created_by)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING *",
        name, client_id, secret_hash, created_by)


async def get_service_account(conn: asyncpg.Connection, client_id: str
                              ) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM service_accounts WHERE client_id = $1", client_id)


async def list_service_accounts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name, client_id, created_by, created_at"
                            " FROM service_accounts ORDER BY id")


async def get_service_account_by_id(conn: asyncpg.Connection, sa_id: str
                                    ) -> asyncpg.Record | None:
    if _id(sa_id) is None:
        return None
    return await conn.fetchrow("SELECT * FROM service_accounts WHERE id = $1", _id(sa_id))


async def delete_service_account(conn: asyncpg.Connection, sa_id: str) -> bool:
    if _id(sa_id) is None:
        return False
    row = await conn.fetchrow("DELETE FROM service_accounts WHERE id = $1 RETURNING client_id",
                              _id(sa_id))
    if row is None:
        return False
    await conn.execute("DELETE FROM access_rules WHERE subject_type = 'service-account'"
                       " AND subject_id = $1", row["client_id"])
    return True


async def create_rule(conn: asyncpg.Connection, *, subject_type: str, subject_id: str,
                      role_name: str, scope_type: str, scope_id: str, created_by: str
                      ) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "INSERT INTO access_rules (subject_type, subject_id, role_name, scope_type, scope_id,"
        " created_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING *",
        subject_type, subject_id, role_name, scope_type, scope_id, created_by)


async def list_rules(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM access_rules ORDER BY id")


async def get_rule(conn: asyncpg.Connection, rule_id: str) -> asyncpg.Record | None:
    if _id(rule_id) is None:
        return None
    return await conn.fetchrow("SELECT * FROM access_rules WHERE id = $1", _id(rule_id))


async def cluster_rules_of_role(conn: asyncpg.Connection, role: str) -> list[asyncpg.Record]:
    """The cluster-wide rules granting `role`, each with who holds it now ("user:<name>",
    "service-account:<clientId>"; a group's rule is held by its members). Serialised with
    every other caller of this (an advisory lock to the end of the transaction), so two
    removals at once cannot each count on what the other removes."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fairway.cluster_rules_of_role'))")
    return await conn.fetch(
        "SELECT r.id, r.subject_type, r.subject_id, CASE r.subject_type"
        " WHEN 'user' THEN ARRAY(SELECT 'user:' || username FROM users"
        "  WHERE username = r.subject_id)"
        " WHEN 'service-account' THEN ARRAY(SELECT 'service-account:' || client_id"
        "  FROM service_accounts WHERE client_id = r.subject_id)"
        " ELSE ARRAY(SELECT 'user:' || username FROM users WHERE groups ? r.subject_id)"
        " END AS holders FROM access_rules r"
        " WHERE r.role_name = $1 AND r.scope_type = 'cluster' ORDER BY r.id", role)


@dataclass(frozen=True)
class LoginFailures:
    """Failed (or still running) logins within the window besides the attempt itself: of one
    name from one client (and how long ago the oldest of them was), and of every name from
    that client."""

    attempt: int
    of_pair: int
    oldest_age_seconds: float
    of_client: int


async def begin_login_attempt(conn: asyncpg.Connection, name: str, client: str,
                              window_seconds: float) -> LoginFailures:
    """Write the attempt down as failed until it succeeds, then count the others. Written
    first so that attempts sent together see each other; forgets what the window has passed."""
    await conn.execute("DELETE FROM login_failures"
                       " WHERE failed_at < clock_timestamp() - make_interval(secs => $1)",
                       window_seconds)
    attempt = await conn.fetchval("INSERT INTO login_failures (name, client) VALUES ($1, $2)"
                                  " RETURNING id", name, client)
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE name = $1) AS of_pair,"
        " coalesce(extract(epoch FROM clock_timestamp() - min(failed_at) FILTER"
        " (WHERE name = $1)), 0)::float8 AS oldest_age,"
        " count(*) AS of_client FROM login_failures"
        " WHERE client = $2 AND id <> $4"
        " AND failed_at > clock_timestamp() - make_interval(secs => $3)",
        name, client, window_seconds, attempt)
    return LoginFailures(attempt, row["of_pair"], row["oldest_age"], row["of_client"])


async def withdraw_login_attempt(conn: asyncpg.Connection, attempt: int) -> None:
    """An attempt refused before it was tried is no failure."""
    await conn.execute("DELETE FROM login_failures WHERE id = $1", attempt)


async def forget_login_failures(conn: asyncpg.Connection, name: str, client: str) -> None:
    await conn.execute("DELETE FROM login_failures WHERE name = $1 AND client = $2",
                       name, client)


async def take_login_turn(conn: asyncpg.Connection, client: str, pace_seconds: float,
                          max_wait_seconds: float) -> float | None:
    """Reserve the client's next attempt slot, `pace_seconds` after the last one reserved; the
    seconds to wait for it, or None (nothing reserved) when it is over `max_wait_seconds` away.
    One row per client, updated atomically, so replicas hand out distinct turns."""
    await conn.execute("DELETE FROM login_turns WHERE next_at < clock_timestamp()"
                       " - interval '1 hour'")
    return await conn.fetchval(
        "INSERT INTO login_turns AS t (client, next_at)"
        " VALUES ($1, clock_timestamp() + make_interval(secs => $2))"
        " ON CONFLICT (client) DO UPDATE"
        " SET next_at = greatest(t.next_at, clock_timestamp()) + make_interval(secs => $2)"
        " WHERE t.next_at <= clock_timestamp() + make_interval(secs => $3)"
        " RETURNING greatest(0, extract(epoch FROM t.next_at - clock_timestamp())"
        " - $2)::float8", client, pace_seconds, max_wait_seconds)


async def delete_rule(conn: asyncpg.Connection, rule_id: int) -> None:
    await conn.execute("DELETE FROM access_rules WHERE id = $1", rule_id)


# organisation -------------------------------------------------------------------------------

async def node_pool_names(conn: asyncpg.Connection) -> list[str]:
    return [r["name"] for r in await conn.fetch("SELECT name FROM node_pools ORDER BY id")]


async def node_pool_topologies(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every node pool's network topology levels (the widest first; empty: none)."""
    rows = await conn.fetch("SELECT name, spec->'networkTopology'->'levels' AS levels"
                            " FROM node_pools ORDER BY id")
    return {r["name"]: [level["nodeLabel"] for level in (r["levels"] or [])] for r in rows}


async def list_node_pools(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM node_pools ORDER BY id")


async def get_node_pool(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    if _is_id(key):
        return await conn.fetchrow("SELECT * FROM node_pools WHERE id = $1", _id(key))
    if "\x00" in key:  # PostgreSQL text cannot hold it, so no pool is named so
        return None
    return await conn.fetchrow("SELECT * FROM node_pools WHERE name = $1", key)


async def insert_node_pool(conn: asyncpg.Connection, name: str, spec: dict
                           ) -> asyncpg.Record | None:
    return await conn.fetchrow("INSERT INTO node_pools (name, spec) VALUES ($1, $2)"
                               " ON CONFLICT (name) DO NOTHING RETURNING *", name, spec)


async def update_node_pool(conn: asyncpg.Connection, pool_id: int, spec: dict
                           ) -> asyncpg.Record:
    return await conn.fetchrow("UPDATE node_pools SET spec = $2, updated_at = now()"
                               " WHERE id = $1 RETURNING *", pool_id, spec)


async def delete_node_pool(conn: asyncpg.Connection, pool_id: int) -> None:
    await conn.execute("DELETE FROM node_pools WHERE id = $1", pool_id)


async def org_units_using_pool(conn: asyncpg.Connection, name: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT 'project ' || name AS unit FROM projects WHERE resources @> $1::jsonb"
        " OR default_node_pools ? $2"
        " UNION ALL SELECT 'department ' || name FROM departments WHERE resources @> $1::jsonb"
        " OR default_node_pools ? $2", [{"nodePool": {"name": name}}], name)
    return [r["unit"] for r in rows]


async def list_departments(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM departments ORDER BY id")


async def get_department(conn: asyncpg.Connection, department_id: str
                         ) -> asyncpg.Record | None:
    if _id(department_id) is None:
        return None
    return await conn.fetchrow("SELECT * FROM departments WHERE id = $1", _id(department_id))


async def insert_department(conn: asyncpg.Connection, name: str, resources: list,
                            default_node_pools: list, scheduling_rules: dict | None,
                            node_types: dict | None = None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "INSERT INTO departments (name, resources, default_node_pools, scheduling_rules,"
        " node_types) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING *",
        name, resources, default_node_pools, scheduling_rules, node_types)


async def update_org_unit(conn: asyncpg.Connection, table: str, unit_id: int,
                          changes: dict[str, Any]) -> asyncpg.Record:
    assert table in ("departments", "projects")
    columns = [c for c in ("resources", "default_node_pools", "scheduling_rules", "node_types")
               if c in changes]
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    sets = f"{sets}, updated_at = now()" if sets else "updated_at = now()"
    return await conn.fetchrow(f"UPDATE {table} SET {sets} WHERE id = $1 RETURNING *",
                               unit_id, *[changes[c] for c in columns])


async def delete_department(conn: asyncpg.Connection, department_id: int) -> None:
    await conn.execute("DELETE FROM access_rules WHERE scope_type = 'department'"
                       " AND scope_id = $1", str(department_id))
    await conn.execute("DELETE FROM departments WHERE id = $1", department_id)


async def projects_in(conn: asyncpg.Connection, department_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM projects WHERE department_id = $1 ORDER BY id",
                            department_id)


async def insert_project(conn: asyncpg.Connection, name: str, department_id: int,
                         resources: list, default_node_pools: list,
                         scheduling_rules: dict | None, node_types: dict | None = None
                         ) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "INSERT INTO projects (name, department_id, resources, default_node_pools,"
        " scheduling_rules, node_types) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (name) DO NOTHING RETURNING *",
        name, department_id, resources, default_node_pools, scheduling_rules, node_types)


async def default_department(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM departments WHERE name = 'default'")


async def project_has_workloads(conn: asyncpg.Connection, project_id: int) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM workloads WHERE project_id = $1)",
                               project_id)


async def delete_project(conn: asyncpg.Connection, project_id: int) -> None:
    await conn.execute("DELETE FROM access_rules WHERE scope_type = 'project'"
                       " AND scope_id = $1", str(project_id))
    await conn.execute("DELETE FROM projects WHERE id = $1", project_id)


async def apply_pod_group(conn: asyncpg.Connection, event: PodGroupChanged) -> bool:
    """The workload's pods as its newest pod-group event lists them; an older or repeated
    event, or one older than the phase event that last set the pods, changes nothing. True when
    the view changed."""
    status = await conn.execute(_APPLY_POD_GROUP, *_pod_group_args(event))
    return status.endswith(" 1")


def pod_groups_to_write(events: list[PodGroupChanged]) -> list[PodGroupChanged]:
    """The events the view needs written. One whose phase event lists the same pods at the
    same time (`phase_sequence`; most are: a pod appears, is bound or ends as the phase moves)
    is that phase event's to write, whichever of the two is read first: the phase event's
    pods stand unless newer ones came, as this one's would."""
    return [e for e in events if e.phase_sequence is None]


async def apply_pod_groups(conn: asyncpg.Connection, events: list[PodGroupChanged]) -> None:
    """`apply_pod_group` for many events, in the order given, in one round trip and one
    statement (`apply_pod_group_batch`, migration 009), but those a phase event carries
    (`pod_groups_to_write`)."""
    events = pod_groups_to_write(events)
    if events:
        # Each list as JSON text: a list of lists would go as a two-dimensional array.
        ids, pods, sequences, times = zip(*(_pod_group_args(e) for e in events), strict=True)
        await conn.execute(
            "SELECT apply_pod_group_batch($1::uuid[], $2::text[]::jsonb[], $3::bigint[],"
            " $4::timestamptz[])", ids, [json.dumps(p) for p in pods], sequences, times)


_APPLY_POD_GROUP = (
    "UPDATE workloads SET pods = $2, pods_sequence = $3, pods_at = $4"
    " WHERE workload_id = $1 AND pods_sequence < $3 AND (pods_at IS NULL OR $4 >= pods_at)")


def _pod_group_args(event: PodGroupChanged) -> tuple:
    pods = [p.model_dump(mode="json", by_alias=True) for p in event.pods]
    return (uuid.UUID(event.workload_id), pods, event.sequence, event.time)


async def gpus_by_node(conn: asyncpg.Connection) -> dict[str, float]:
    """GPUs of the running or starting pods the workload view places on each node (a fraction
    by its portion of each device it shares)."""
    rows = await conn.fetch(
        "SELECT pod->>'node' AS node, sum(COALESCE((pod->>'gpuPortion')::float * GREATEST("
        " jsonb_array_length(COALESCE(pod->'gpuDevices', '[]')), 1),"
        " (pod->>'gpus')::float, 0)) AS gpus"
        " FROM workloads, jsonb_array_elements(pods) AS pod"
        " WHERE pod->>'node' IS NOT NULL AND pod->>'phase' IN ('Pending', 'Running')"
        " GROUP BY 1")
    return {r["node"]: r["gpus"] for r in rows}


def _scope_clause(scope: tuple[list[int], list[int]] | None) -> tuple[str, list[Any]]:
    if scope is None:
        return "", []
    return ("WHERE (project_id = ANY($1::bigint[]) OR (project_id = ANY($2::bigint[])"
            " AND workload_type = 'inference'))", [scope[0], scope[1]])


async def workload_counts(conn: asyncpg.Connection,
                          scope: tuple[list[int], list[int]] | None = None
                          ) -> list[asyncpg.Record]:
    """(phase, why it waits when Pending, how many) over the workloads `scope` shows (as
    `list_workloads` takes it); the reason as the API shows it: the scheduler's, else the
    phase's."""
    clause, args = _scope_clause(scope)
    return await conn.fetch(
        "SELECT phase, CASE WHEN phase = 'Pending' THEN COALESCE(scheduler_code, phase_reason)"
        f" END AS reason, count(*) AS workloads FROM workloads {clause} GROUP BY 1, 2", *args)


async def shared_devices_by_pool(conn: asyncpg.Connection) -> dict[str, int]:
    """Per node pool, how many GPU devices fractions of running or starting pods share."""
    rows = await conn.fetch(
        "SELECT pod->>'nodePool' AS pool, count(DISTINCT (pod->>'node') || '/' || device)"
        " AS devices FROM workloads, jsonb_array_elements(pods) AS pod,"
        " jsonb_array_elements_text(COALESCE(pod->'gpuDevices', '[]')) AS device"
        " WHERE pod->>'node' IS NOT NULL AND pod->>'gpuPortion' IS NOT NULL"
        " AND pod->>'phase' IN ('Pending', 'Running') GROUP BY 1")
    return {r["pool"] or "": r["devices"] for r in rows}


async def device_holders(conn: asyncpg.Connection,
                         scope: tuple[list[int], list[int]] | None = None
                         ) -> dict[str, list[dict[str, Any]]]:
    """node → the bound pods (running or starting) of the workloads `scope` shows, each with
    its workload, the devices it holds and its portion of them (None: whole devices)."""
    clause, args = _scope_clause(scope)
    rows = await conn.fetch(
        "SELECT workload_id, name, project, pod FROM workloads,"
        " jsonb_array_elements(pods) AS pod"
        f" {clause} {'AND' if clause else 'WHERE'} pod->>'node' IS NOT NULL"
        " AND pod->>'phase' IN ('Pending', 'Running') ORDER BY name", *args)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        pod = json.loads(row["pod"]) if isinstance(row["pod"], str) else row["pod"]
        out.setdefault(pod["node"], []).append({
            "workloadId": str(row["workload_id"]), "workload": row["name"],
            "project": row["project"], "pod": pod.get("name"), "gpus": pod.get("gpus", 0),
            "devices": pod.get("gpuDevices") or [], "portion": pod.get("gpuPortion")})
    return out


async def pods_on_nodes(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """The running or starting pods the workload view places on each node, with their
    workload's id and name, for the nodes' device views."""
    rows = await conn.fetch(
        "SELECT pod->>'node' AS node, workload_id, name, pod"
        " FROM workloads, jsonb_array_elements(pods) AS pod"
        " WHERE pod->>'node' IS NOT NULL AND pod->>'phase' IN ('Pending', 'Running')")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        pod = json.loads(r["pod"]) if isinstance(r["pod"], str) else dict(r["pod"])
        pod.update(workloadId=str(r["workload_id"]), workloadName=r["name"])
        out.setdefault(r["node"], []).append(pod)
    return out


# the scheduler's view -----------------------------------------------------------------------

async def apply_queue_status(conn: asyncpg.Connection, event: QueueStatusChanged) -> bool:
    """Keep the newest status of each queue (older deliveries change nothing)."""
    done = await conn.execute(
        "INSERT INTO queue_status (kind, name, node_pool, status, changed_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, name, node_pool) DO UPDATE"
        " SET status = EXCLUDED.status, changed_at = EXCLUDED.changed_at"
        " WHERE queue_status.changed_at <= EXCLUDED.changed_at",
        event.kind, event.name, event.node_pool, event.model_dump(mode="json", by_alias=True),
        event.changed_at)
    return done.endswith(" 1")


async def queue_statuses(conn: asyncpg.Connection, kind: str, name: str | None = None
                         ) -> dict[str, dict[str, Any]]:
    """unit name → node pool → the queue's last status (QueueStatusChanged, camelCase), for
    every unit of `kind` or the one named."""
    rows = await conn.fetch(
        "SELECT name, node_pool, status FROM queue_status WHERE kind = $1"
        " AND ($2::text IS NULL OR name = $2)", kind, name)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row["name"], {})[row["node_pool"]] = row["status"]
    return out


async def apply_serving(conn: asyncpg.Connection, event: ServingChanged) -> bool:
    """Keep an inference server's newest serving status; older news is ignored."""
    try:
        wid = uuid.UUID(event.workload_id)
    except ValueError:
        return False
    done = await conn.execute(
        "UPDATE workloads SET serving = $2, serving_sequence = $3"
        " WHERE workload_id = $1 AND serving_sequence < $3",
        wid, event.model_dump(mode="json", by_alias=True), event.sequence)
    return done.endswith(" 1")


async def apply_pending(conn: asyncpg.Connection, event: SchedulingPending) -> bool:
    """Record why a workload waits (or that it no longer does); older news is ignored."""
    return await apply_pendings(conn, [event]) == 1


async def apply_pendings(conn: asyncpg.Connection, events: list[SchedulingPending]) -> int:
    """`apply_pending` for many events, in the order given, in one statement; how many rows
    changed. Only each workload's newest event can stay (the latest `changed_at`, of equals
    the last given), so only that one is sent: an UPDATE … FROM joins a row once."""
    newest: dict[uuid.UUID, SchedulingPending] = {}
    for event in events:
        try:
            wid = uuid.UUID(event.workload_id)
        except ValueError:
            continue
        kept = newest.get(wid)
        if kept is None or kept.changed_at <= event.changed_at:
            newest[wid] = event
    if not newest:
        return 0
    done = await conn.execute(
        "UPDATE workloads w SET scheduler_code = t.code, scheduler_message = t.message,"
        " scheduler_changed_at = t.at"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])"
        " AS t(id, code, message, at)"
        " WHERE w.workload_id = t.id"
        " AND (w.scheduler_changed_at IS NULL OR w.scheduler_changed_at <= t.at)",
        list(newest), [e.code if e.pending else None for e in newest.values()],
        [e.message if e.pending else None for e in newest.values()],
        [e.changed_at for e in newest.values()])
    return int(done.rsplit(" ", 1)[1])


# third-party workloads -----------------------------------------------------------------------


async def apply_third_party(conn: asyncpg.Connection, event: ThirdPartyWorkloadChanged,
                            project: asyncpg.Record | None, problem: str | None) -> bool:
    """Keep a third-party workload's row as lifecycle last announced it (older news is
    ignored), and its phase history. `project` None: it belongs to no project (`problem`
    says why, as its phase message). True when the row changed."""
    wid = uuid.UUID(event.workload_id)
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT name, phase, phase_sequence, third_party_observed_at FROM workloads"
            " WHERE workload_id = $1 FOR UPDATE", wid)
        if row is not None and row["third_party_observed_at"] is not None and \
                row["third_party_observed_at"] > event.observed_at:
            return False
        reason, message = event.phase_reason, event.phase_message
        if problem is not None:
            # lifecycle's reason for a problem it found (no project; a fraction annotation it
            # cannot read), else ours: the project it names does not exist
            reason = (event.phase_reason if problem == event.problem
                      and event.phase_reason in PROBLEM_REASONS else "NoProject")
            message = problem
        spec = third_party_spec(event)
        owner = {"kind": event.kind, "apiVersion": event.api_version, "name": event.name,
                 "namespace": event.namespace, "uid": event.owner_uid,
                 "grouping": event.grouping, "minMembers": event.min_members}
        pods = [p.model_dump(mode="json", by_alias=True) for p in event.pod_summaries]
        phase = event.phase.value
        sequence = (row["phase_sequence"] if row else 0) + (
            1 if row is None or row["phase"] != phase else 0)
        if row is None:
            name = await _free_name(conn, event.name, project, event.workload_id)
            await conn.execute(
                "INSERT INTO workloads (workload_id, name, project_id, project, workload_type,"
                " submitted_spec, effective_spec, created_by, created_at, phase, phase_reason,"
                " phase_message, phase_sequence, phase_updated_at, pods, third_party,"
                " third_party_observed_at)"
                " VALUES ($1, $2, $3, $4, 'thirdParty', $5, $5, $6, $7, $8, $9, $10, $11, $7,"
                " $12, $13, $7)",
                wid, name, project["id"] if project else None,
                project["name"] if project else (event.project or ""), spec,
                f"kubernetes:{event.namespace}", event.observed_at, phase, reason, message,
                sequence, pods, owner)
        else:
            await conn.execute(
                "UPDATE workloads SET project_id = $2, project = $3, submitted_spec = $4,"
                " effective_spec = $4, phase = $5, phase_reason = $6, phase_message = $7,"
                " phase_sequence = $8, phase_updated_at = CASE WHEN phase = $5"
                " THEN phase_updated_at ELSE $9 END, pods = $10, third_party = $11,"
                " third_party_observed_at = $9,"
                " desired_phase = CASE WHEN $12 THEN 'Deleted' ELSE desired_phase END"
                " WHERE workload_id = $1",
                wid, project["id"] if project else None,
                project["name"] if project else (event.project or ""), spec, phase, reason,
                message, sequence, event.observed_at, pods, owner, event.gone)
        if row is None or row["phase"] != phase:
            await conn.execute(
                "INSERT INTO workload_events (workload_id, sequence, previous_phase, phase,"
                " reason, message, time) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT DO NOTHING",
                wid, sequence, row["phase"] if row else None, phase, reason, message,
                event.observed_at)
    return True


PROBLEM_REASONS = frozenset({"NoProject", "InvalidGpuFraction"})


def third_party_spec(event: ThirdPartyWorkloadChanged) -> dict[str, Any]:
    """The spec a third-party workload shows: what its pods ask for, in a spec's shape (a
    fraction by annotation as a native fraction asks: one device, a portion or memory)."""
    compute: dict[str, Any] = {"gpuDevicesRequest": event.gpus_per_pod}
    if event.gpu_portion is not None:
        compute = {"gpuDevicesRequest": 1, "gpuRequestType": "portion",
                   "gpuPortionRequest": event.gpu_portion}
    elif event.gpu_memory_mib is not None:
        compute = {"gpuDevicesRequest": 1, "gpuRequestType": "memory",
                   "gpuMemoryRequest": f"{event.gpu_memory_mib}Mi"}
    if event.cpu_millis:
        compute["cpuCoreRequest"] = event.cpu_millis / 1000
    if event.memory_mib:
        compute["cpuMemoryRequest"] = f"{event.memory_mib}Mi"
    pods = event.replicas if event.replicas is not None else len(event.pods)
    return {"pods": pods, "minPods": event.min_members,
            "priorityClass": event.priority_class, "preemptible": event.preemptible,
            "compute": compute}


async def _free_name(conn: asyncpg.Connection, name: str, project: asyncpg.Record | None,
                     workload_id: str) -> str:
    """The owner's name, unless a workload of the project has it already (a training and a
    Job may share a name): then with the workload id's first eight digits."""
    if project is None:
        return name
    taken = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM workloads WHERE project_id = $1 AND name = $2)",
        project["id"], name)
    return f"{name}-{workload_id[:8]}" if taken else name


async def project_named(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM projects WHERE name = $1", name)


async def third_party_to_submit(conn: asyncpg.Connection, workload_id: str,
                                request: dict[str, Any]) -> int | None:
    """The revision of a third-party workload's request to send the scheduler now (0 the
    first time), or None when `request` (its pods and minimum) is what was sent last."""
    return await conn.fetchval(
        "UPDATE workloads SET third_party_submitted_at = coalesce(third_party_submitted_at,"
        " now()), third_party_request = $2, third_party_revision = CASE WHEN"
        " third_party_submitted_at IS NULL THEN 0 ELSE third_party_revision + 1 END"
        " WHERE workload_id = $1 AND project_id IS NOT NULL"
        " AND third_party_request IS DISTINCT FROM $2::jsonb RETURNING third_party_revision",
        uuid.UUID(workload_id), request)
