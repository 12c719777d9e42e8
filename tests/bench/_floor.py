"""The I/O floor: the fastest a workload could go through this machine's PostgreSQL and NATS if
Fairway did nothing but its I/O.

Per workload, `commits` write transactions (an insert each, like submission's workload + outbox
row) and `publishes` JetStream publishes awaited for their acks (like the events a workload
causes, pipelined), at the same concurrency as the real run, on the same servers, with nothing
else around them. Fairway's throughput divided by this one says how much of the machine our own
per-message work takes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import asyncpg
import nats

from fairway_bus.settings import nats_servers

FLOOR_STREAM = "BENCH_IO_FLOOR"


async def io_floor(nats_url: str, database_url: str, count: int, concurrency: int,
                   commits: int = 1, publishes: int = 10) -> float:
    """Workloads per second of the bare pipeline."""
    nc = await nats.connect(nats_servers(nats_url))
    js = nc.jetstream()
    await js.add_stream(name=FLOOR_STREAM, subjects=["bench.floor.>"], max_msgs=count * publishes)
    pool = await asyncpg.create_pool(database_url, min_size=concurrency // 4 or 1,
                                     max_size=max(1, concurrency // 4))
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_io_floor "
                       "(id uuid PRIMARY KEY, body jsonb NOT NULL)")
    body = json.dumps({"image": "busybox", "compute": {"gpuDevicesRequest": 0},
                       "annotations": [{"name": "sim.fairway.io/run-seconds", "value": "1"}]})
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            for _ in range(commits):
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("INSERT INTO bench_io_floor VALUES ($1, $2)",
                                       uuid.uuid4(), body)
            payload = body.encode()
            # Pipelined: all of a workload's publishes in flight at once, acks awaited together.
            await asyncio.gather(*(js.publish(f"bench.floor.{i}.{n}", payload)
                                   for n in range(publishes)))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rate = count / (time.perf_counter() - started)
        # The floor must have done its I/O, all of it, or its figure means nothing.
        rows = await pool.fetchval("SELECT count(*) FROM bench_io_floor")
        stored = (await js.stream_info(FLOOR_STREAM)).state.messages
        if rows != count * commits or stored != count * publishes:
            raise RuntimeError(f"I/O floor: {rows} rows and {stored} messages, expected "
                               f"{count * commits} and {count * publishes}")
        return rate
    finally:
        await pool.execute("DROP TABLE bench_io_floor")
        await pool.close()
        await js.delete_stream(FLOOR_STREAM)
        await nc.close()
