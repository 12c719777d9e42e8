"""The metrics service's SQL, all of it. Functions run on the caller's connection and
transaction."""

import json
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


async def add_workloads(conn: asyncpg.Connection, workloads: Iterable[tuple[str, str, str]]
                        ) -> dict[str, WorkloadView]:
    """Empty projections for (id, project, type) not yet kept; those created here, empty.

    Creating the rows first gives the locks something to hold: the submission and the phase
    consumers may handle the same workload at the same time (a row this transaction created
    is its own until it commits; the others are for `lock_workloads`). In id order, as the
    locks are taken, so two batches never wait on each other crosswise.
    """
    ids, projects, types = _columns(sorted(workloads), 3)
    if not ids:
        return {}
    rows = await conn.fetch(
        "INSERT INTO workloads (id, project, workload_type)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS w(id, p, t)"
        " ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id, project, workload_type",
        ids, projects, types)
    return {row[0]: WorkloadView(row[0], row[1], row[2]) for row in rows}


async def lock_workloads(conn: asyncpg.Connection, ids: Iterable[str]
                         ) -> dict[str, WorkloadView]:
    """The kept projections of these workloads, locked until the transaction ends."""
    ids = sorted(ids)
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM workloads WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        ids)
    return {row["id"]: _view(row) for row in rows}


async def save_workloads(conn: asyncpg.Connection, views: Iterable[WorkloadView]) -> None:
    """Every view written in one statement (the rows exist: `add_workloads`). The node pools
    and placements of each go as JSON text: arrays of arrays of differing lengths do not
    unnest (and a list of lists would be sent as one two-dimensional array)."""
    rows = [(v.id, v.submitted_at, v.phase, v.phase_sequence, v.phase_changed_at,
             v.first_running_at, v.completed_at, v.failed_at, v.running_latency_observed,
             v.completed_latency_observed, v.project_id, v.workload_type, v.gpus_requested,
             json.dumps(v.node_pools), json.dumps(v.placements), v.pending_seconds,
             v.running_seconds) for v in views]
    if not rows:
        return
    await conn.execute(
        "UPDATE workloads AS w SET submitted_at = u.submitted_at, phase = u.phase,"
        " phase_sequence = u.phase_sequence, phase_changed_at = u.phase_changed_at,"
        " first_running_at = u.first_running_at, completed_at = u.completed_at,"
        " failed_at = u.failed_at, running_latency_observed = u.running_latency_observed,"
        " completed_latency_observed = u.completed_latency_observed,"
        " project_id = u.project_id, workload_type = u.workload_type,"
        " gpus_requested = u.gpus_requested,"
        " node_pools = ARRAY(SELECT p FROM jsonb_array_elements_text(u.node_pools::jsonb)"
        "   WITH ORDINALITY AS e(p, i) ORDER BY i),"
        " placements = u.placements::jsonb, pending_seconds = u.pending_seconds,"
        " running_seconds = u.running_seconds"
        " FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::integer[],"
        "   $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],"
        "   $9::boolean[], $10::boolean[], $11::text[], $12::text[], $13::float8[],"
        "   $14::text[], $15::text[], $16::float8[], $17::float8[])"
        " AS u(id, submitted_at, phase, phase_sequence, phase_changed_at, first_running_at,"
        "   completed_at, failed_at, running_latency_observed, completed_latency_observed,"
        "   project_id, workload_type, gpus_requested, node_pools, placements,"
        "   pending_seconds, running_seconds)"
        " WHERE w.id = u.id",
        *_columns(rows, 17))


def _columns(rows: list[tuple], width: int) -> list[list]:
    """Rows turned into columns, one array parameter each."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


async def put_current(conn: asyncpg.Connection, kind: str,
                      values: dict[str, tuple[int, str]]) -> set[str]:
    """Keep each key's message (by key: stream sequence, JSON payload) as the current value
    of (kind, key) unless a newer one is kept. The keys that took the new value."""
    keys = sorted(values)
    if not keys:
        return set()
    rows = await conn.fetch(
        "INSERT INTO current_state (kind, key, sequence, payload)"
        " SELECT $1, v.key, v.sequence, v.payload::jsonb"
        " FROM unnest($2::text[], $3::bigint[], $4::text[]) AS v(key, sequence, payload)"
        " ORDER BY v.key"
        " ON CONFLICT (kind, key) DO UPDATE SET sequence = excluded.sequence,"
        " payload = excluded.payload WHERE current_state.sequence < excluded.sequence"
        " RETURNING key",
        kind, keys, [values[k][0] for k in keys], [values[k][1] for k in keys])
    return {row[0] for row in rows}


async def forget_current(conn: asyncpg.Connection, kinds: Iterable[str],
                         keys: Iterable[str]) -> None:
    await conn.execute("DELETE FROM current_state WHERE kind = ANY($1::text[])"
                       " AND key = ANY($2::text[])", list(kinds), sorted(keys))


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
