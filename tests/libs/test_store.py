"""The store against a real PostgreSQL (and JetStream for the relay)."""

import asyncio
import json
import uuid

import asyncpg
import nats
import pytest

from fairway_bus.bootstrap import ensure_streams_and_consumers
from fairway_contracts import streams
from fairway_contracts.events import ProjectChanged
from fairway_store import (
    OutboxRelay,
    add_to_outbox,
    create_pool,
    first_deliveries,
    migrate,
    migrate_dsn,
)

pytestmark = pytest.mark.infra


async def test_migrations_run_once_even_when_two_instances_start_together(database_url,
                                                                          tmp_path):
    (tmp_path / "001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (tmp_path / "002_more.sql").write_text("INSERT INTO things VALUES (1);")
    results = await asyncio.gather(*(migrate_dsn(database_url, "migtest", tmp_path)
                                     for _ in range(4)))
    applied = [v for r in results for v in r]
    assert sorted(applied) == ["000_outbox_inbox", "000_outbox_notify", "001_things", "002_more"]
    conn = await asyncpg.connect(database_url)
    assert await conn.fetchval("SELECT count(*) FROM migtest.things") == 1
    await conn.close()


async def test_a_batch_of_message_ids_is_recorded_once_each(database_url):
    conn = await asyncpg.connect(database_url)
    await migrate(conn, "inboxtest", None)
    await conn.execute("SET search_path = inboxtest")
    try:
        async with conn.transaction():
            assert await first_deliveries(conn, "c", ["a", "b", "a"]) == {"a", "b"}
        # a redelivered batch: only what is new; another consumer keeps its own ids
        assert await first_deliveries(conn, "c", ["b", "c"]) == {"c"}
        assert await first_deliveries(conn, "other", ["a"]) == {"a"}
        assert await first_deliveries(conn, "c", []) == set()
        # rolled back with the caller's transaction: delivered again, seen as new
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert await first_deliveries(conn, "c", ["d"]) == {"d"}
                raise RuntimeError("rollback")
        assert await first_deliveries(conn, "c", ["d"]) == {"d"}
    finally:
        await conn.close()


async def test_a_badly_named_migration_is_refused(database_url, tmp_path):
    (tmp_path / "first.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"first\.sql"):
        await migrate_dsn(database_url, "badmig", tmp_path)


async def test_json_values_go_and_come_back_as_the_standard_library_would_write_them(
        database_url):
    """The pool's json/jsonb codec (orjson, for speed) writes what json.dumps writes: keys
    that are not strings become strings, tuples lists, unicode as it is."""
    pool = await create_pool(database_url, "public", max_size=1)
    value = {"pods": [{"name": "w-0", "gpus": 0.5, "node": None}], 7: ("a", "é"), "ok": True}
    try:
        async with pool.acquire() as c:
            for type_name in ("json", "jsonb"):
                back = await c.fetchval(f"SELECT $1::{type_name}", value)
                assert back == json.loads(json.dumps(value))
            assert await c.fetchval("SELECT $1::jsonb ->> '7'", value) == '["a", "é"]'
    finally:
        await pool.close()


async def test_outbox_rows_commit_with_the_state_and_the_relay_publishes_them_once(
        database_url, nats_url):
    schema = "outboxtest"
    conn = await asyncpg.connect(database_url)
    await migrate(conn, schema, None)
    await conn.close()
    pool = await create_pool(database_url, schema)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams_and_consumers(js)
    token = uuid.uuid4().hex[:8]
    sub = await js.subscribe(f"fairway.org.test.{token}.*", stream=streams.ORG.name,
                             ordered_consumer=True)

    async with pool.acquire() as c:
        # A rolled-back transaction leaves no event behind.
        with pytest.raises(RuntimeError):
            async with c.transaction():
                await add_to_outbox(c, f"fairway.org.test.{token}.x",
                                    ProjectChanged(event_id="x", project_id="x", name="x"),
                                    msg_id=f"{token}-x")
                raise RuntimeError("rollback")
        async with c.transaction():
            for n in range(3):
                pid = f"{token}-{n}"
                await add_to_outbox(c, f"fairway.org.test.{token}.{n}",
                                    ProjectChanged(event_id=pid, project_id=pid, name=f"p{n}"),
                                    msg_id=pid)
            # the same event twice in the outbox is kept once
            await add_to_outbox(c, f"fairway.org.test.{token}.0",
                                ProjectChanged(event_id="0", project_id="0", name="p0"),
                                msg_id=f"{token}-0")

    relay = OutboxRelay(database_url, pool, schema, js)
    await relay.start()
    names = []
    for _ in range(3):
        msg = await sub.next_msg(timeout=5)
        names.append(ProjectChanged.model_validate_json(msg.data).name)
        assert msg.headers["Nats-Msg-Id"].startswith(token)
    assert names == ["p0", "p1", "p2"]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.5)
    # Published rows are gone from the outbox; the same events added again (a writer that
    # ran twice) are published again, and JetStream drops them by their ids.
    async with pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM outbox") == 0
        for n in range(3):
            pid = f"{token}-{n}"
            await add_to_outbox(c, f"fairway.org.test.{token}.{n}",
                                ProjectChanged(event_id=pid, project_id=pid, name=f"p{n}"),
                                msg_id=pid)
    await relay.relay_once()
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.5)
    await relay.stop()
    await pool.close()
    await nc.close()
