"""Plain SQL migrations per service schema, applied in order under an advisory lock.

A service keeps `NNN_description.sql` files in its `migrations/` folder. Every applied file is
recorded in `<schema>.schema_migrations`; two instances starting together serialise on a
PostgreSQL advisory lock keyed by the schema name, so each file runs exactly once.
"""

import re
from pathlib import Path

import asyncpg

_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")

# Every service schema gets these first: the outbox, the inbox (processed message ids), and
# the trigger that wakes the outbox relay.
_NOTIFY = """
-- Wake the relay when rows are committed (once per statement; NOTIFY is delivered at commit).
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""
_BASE = """
CREATE TABLE IF NOT EXISTS outbox (
    id           bigserial PRIMARY KEY,
    subject      text        NOT NULL,
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    msg_id       text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS inbox (
    consumer     text        NOT NULL,
    msg_id       text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, msg_id)
);
"""


def migration_files(folder: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(folder.glob("*.sql")):
        if not _NAME.match(path.name):
            raise ValueError(f"migration {path.name}: name must look like 001_create_tables.sql")
        files.append((path.stem, path))
    return files


async def migrate(conn: asyncpg.Connection, schema: str, folder: Path | None) -> list[str]:
    """Create `schema` and apply what has not been applied yet. Returns the versions applied."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"schema name {schema!r} must be lowercase letters, digits and _")
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"fairway.migrate.{schema}")
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET search_path TO {schema}, public")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        steps = [("000_outbox_inbox", _BASE), ("000_outbox_notify", _NOTIFY)]
        steps += [(v, p.read_text()) for v, p in (migration_files(folder) if folder else [])]
        for version, sql in steps:
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"fairway.migrate.{schema}")
    return applied


async def migrate_dsn(dsn: str, schema: str, folder: Path | None) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema, folder)
    finally:
        await conn.close()
