"""The bus against a real JetStream: dedup, retries with delay, dead letters, idempotency."""

import asyncio
import itertools
import uuid
from dataclasses import replace

import asyncpg
import pytest

from fairway_bus import durable_batch_subscriber, durable_subscriber, make_broker, publish_model
from fairway_bus.bootstrap import consumer_config
from fairway_contracts import streams, subjects
from fairway_contracts.events import ProjectChanged
from fairway_store import first_delivery, migrate

pytestmark = pytest.mark.infra


@pytest.fixture
async def consumer(js):
    """A throwaway durable consumer on the ORG stream, filtered to its own subject space."""
    token = uuid.uuid4().hex[:8]
    spec = streams.ConsumerSpec(
        "test", f"test-{token}", streams.ORG.name, (f"fairway.org.test.{token}.*",),
        "test consumer", max_deliver=3, retry_delays_seconds=(0.3,),
    )
    await js.add_consumer(spec.stream, consumer_config(spec))
    yield spec, token
    await js.delete_consumer(spec.stream, spec.durable)


def event(token: str, n: int, name: str = "ok") -> tuple[str, ProjectChanged]:
    pid = f"{token}-{n}"
    return f"fairway.org.test.{token}.{n}", ProjectChanged(event_id=pid, project_id=pid,
                                                           name=name)


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_repeated_msg_id_is_dropped_by_the_stream(js, consumer):
    _, token = consumer
    subject, payload = event(token, 1)
    first = await publish_model(js, subject, payload, msg_id=f"dedup-{token}")
    second = await publish_model(js, subject, payload, msg_id=f"dedup-{token}")
    assert not first.duplicate
    assert second.duplicate
    assert second.seq == first.seq


async def test_a_failing_handler_is_retried_with_delay_then_dead_lettered(nats_url, js, consumer):
    spec, token = consumer
    broker = make_broker(nats_url, "test")
    seen: list[tuple[str, int, float]] = []

    @durable_subscriber(broker, spec, ProjectChanged)
    async def handle(payload: ProjectChanged, delivery) -> None:
        seen.append((payload.name, delivery.delivered, asyncio.get_running_loop().time()))
        if payload.name == "poison":
            raise RuntimeError("cannot handle this one")

    await broker.start()
    try:
        subject, payload = event(token, 2, name="poison")
        await publish_model(js, subject, payload, msg_id=f"poison-{token}")
        subject, payload = event(token, 3, name="fine")
        await publish_model(js, subject, payload, msg_id=f"fine-{token}")
        await wait_for(lambda: len([s for s in seen if s[0] == "poison"]) == 3)
        await wait_for(lambda: any(s[0] == "fine" for s in seen))
        await asyncio.sleep(0.8)  # nothing more arrives after the last allowed delivery
    finally:
        await broker.stop()
    poison = [s for s in seen if s[0] == "poison"]
    assert [d for _, d, _ in poison] == [1, 2, 3]
    assert all(b[2] - a[2] >= 0.25 for a, b in itertools.pairwise(poison)), (
        "retries must be spaced, not immediate")
    letter = await js.get_last_msg("FAIRWAY_DEADLETTER", subjects.deadletter(spec.durable))
    assert b"cannot handle this one" in letter.data
    assert b'"deliveries":3' in letter.data


async def test_a_redelivered_message_changes_nothing_the_second_time(nats_url, js, consumer,
                                                                     database_url):
    """The handler commits, then 'crashes' before its ack: the redelivery must be a no-op."""
    spec, token = consumer
    conn = await asyncpg.connect(database_url)
    await migrate(conn, "bustest", None)
    await conn.execute("CREATE TABLE IF NOT EXISTS bustest.counts (id text PRIMARY KEY, n int)")
    broker = make_broker(nats_url, "test")
    deliveries: list[int] = []

    @durable_subscriber(broker, spec, ProjectChanged)
    async def handle(payload: ProjectChanged, delivery) -> None:
        deliveries.append(delivery.delivered)
        async with conn.transaction():
            if await first_delivery(conn, spec.durable, delivery.msg_id):
                await conn.execute(
                    "INSERT INTO bustest.counts VALUES ($1, 1) ON CONFLICT (id)"
                    " DO UPDATE SET n = counts.n + 1", payload.project_id)
        if delivery.delivered == 1:
            raise ConnectionError("lost the connection before acking")

    await broker.start()
    try:
        subject, payload = event(token, 4)
        await publish_model(js, subject, payload, msg_id=f"once-{token}")
        await wait_for(lambda: len(deliveries) >= 2)
        await asyncio.sleep(0.3)
    finally:
        await broker.stop()
    assert deliveries == [1, 2]
    assert await conn.fetchval("SELECT n FROM bustest.counts WHERE id = $1",
                               payload.project_id) == 1
    await conn.close()


async def test_a_parallel_consumer_keeps_each_keys_order_and_overlaps_keys(nats_url, js):
    token = uuid.uuid4().hex[:8]
    spec = streams.ConsumerSpec(
        "test", f"test-par-{token}", streams.ORG.name, (f"fairway.org.par{token}.>",),
        "parallel test consumer", parallel=4, ordering_tokens=4,
    )
    await js.add_consumer(spec.stream, consumer_config(spec))
    broker = make_broker(nats_url, "test")
    seen: dict[str, list[int]] = {}
    in_flight = 0
    most_in_flight = 0

    @durable_subscriber(broker, spec, ProjectChanged)
    async def handle(payload: ProjectChanged, delivery) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.01)  # a handler doing I/O
        key, n = payload.name.split(":")
        seen.setdefault(key, []).append(int(n))
        in_flight -= 1

    # subjects fairway.org.par<token>.<key>.<n>: the first four tokens are the ordering key
    for n in range(10):
        for key in ("a", "b", "c", "d"):
            await publish_model(js, f"fairway.org.par{token}.{key}.{n}",
                                ProjectChanged(event_id=f"{key}{n}", project_id=key,
                                               name=f"{key}:{n}"), msg_id=f"{token}{key}{n}")
    assert spec.ordering_key(f"fairway.org.par{token}.a.3") == f"fairway.org.par{token}.a"
    assert replace(spec, ordering_tokens=None).ordering_key("x.y") == "x.y"
    await broker.start()
    try:
        await wait_for(lambda: sum(len(v) for v in seen.values()) == 40)
    finally:
        await broker.stop()
        await js.delete_consumer(spec.stream, spec.durable)
    assert all(v == list(range(10)) for v in seen.values()), seen
    assert most_in_flight > 1, "different keys are handled concurrently"


async def test_a_batch_consumer_gets_a_fetch_at_once_in_stream_order(nats_url, js, consumer):
    spec, token = consumer
    for n in range(30):
        subject, payload = event(token, n, name=f"m{n}")
        await publish_model(js, subject, payload, msg_id=f"batch-{token}-{n}")
    broker = make_broker(nats_url, "test")
    batches: list[list[str]] = []

    @durable_batch_subscriber(broker, spec, ProjectChanged, batch_size=50)
    async def handle(items) -> None:
        batches.append([item.payload.name for item in items])

    await broker.start()
    try:
        await wait_for(lambda: sum(len(b) for b in batches) == 30)
        await asyncio.sleep(spec.ack_wait_seconds / 100 + 0.5)
    finally:
        await broker.stop()
    assert [name for b in batches for name in b] == [f"m{n}" for n in range(30)], (
        "each message once, in stream order")
    assert max(len(b) for b in batches) > 1, "what was there came in one call"
    info = await js.consumer_info(spec.stream, spec.durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0, "every message acked"


async def test_a_paused_batch_consumer_gathers_what_arrives_between_fetches(nats_url, js,
                                                                            consumer):
    spec, token = consumer
    broker = make_broker(nats_url, "test")
    batches: list[list[str]] = []

    @durable_batch_subscriber(broker, spec, ProjectChanged, pause=1.0)
    async def handle(items) -> None:
        batches.append([item.payload.name for item in items])

    await broker.start()
    try:
        subject, payload = event(token, 0, name="first")
        await publish_model(js, subject, payload, msg_id=f"pause-{token}-first")
        await wait_for(lambda: len(batches) == 1)
        for n in range(10):  # one at a time, while the consumer pauses
            subject, payload = event(token, n + 1, name=f"m{n}")
            await publish_model(js, subject, payload, msg_id=f"pause-{token}-{n}")
        await wait_for(lambda: sum(len(b) for b in batches) == 11)
    finally:
        await broker.stop()
    assert batches == [["first"], [f"m{n}" for n in range(10)]], "the ten in one call"


async def test_a_failing_batch_is_handled_one_by_one_and_only_the_poison_is_dead_lettered(
        nats_url, js, consumer, database_url):
    """A batch holding a poison message rolls back whole; its messages are then applied alone:
    the good ones once each, the poison retried with delay and dead-lettered."""
    spec, token = consumer
    conn = await asyncpg.connect(database_url)
    await migrate(conn, "bustest", None)
    await conn.execute("CREATE TABLE IF NOT EXISTS bustest.batch_applied"
                       " (consumer text, name text, PRIMARY KEY (consumer, name))")
    names = ["a", "b", "poison", "c", "d"]
    for n, name in enumerate(names):
        subject, payload = event(token, n, name=name)
        await publish_model(js, subject, payload, msg_id=f"batchpoison-{token}-{n}")
    broker = make_broker(nats_url, "test")
    calls: list[list[tuple[str, int]]] = []

    @durable_batch_subscriber(broker, spec, ProjectChanged)
    async def handle(items) -> None:
        calls.append([(i.payload.name, i.delivery.delivered) for i in items])
        async with conn.transaction():
            for item in items:
                await conn.execute("INSERT INTO bustest.batch_applied VALUES ($1, $2)",
                                   spec.durable, item.payload.name)
                if item.payload.name == "poison":
                    raise RuntimeError("cannot apply this one")

    await broker.start()
    try:
        await wait_for(lambda: sum(1 for c in calls for name, _ in c if name == "poison") >= 4)
        await asyncio.sleep(0.8)  # nothing more after the last allowed delivery
    finally:
        await broker.stop()
    applied = {r["name"] for r in await conn.fetch(
        "SELECT name FROM bustest.batch_applied WHERE consumer = $1", spec.durable)}
    assert applied == {"a", "b", "c", "d"}, "the good ones applied, the poison rolled back"
    assert calls[0] == [(name, 1) for name in names], "first, the whole fetch in one call"
    alone = calls[1:]
    assert all(len(c) == 1 for c in alone), "then one message at a time"
    assert [d for c in alone for name, d in c if name == "poison"] == [1, 2, 3]
    letter = await js.get_last_msg("FAIRWAY_DEADLETTER", subjects.deadletter(spec.durable))
    assert b"cannot apply this one" in letter.data
    info = await js.consumer_info(spec.stream, spec.durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    await conn.close()
