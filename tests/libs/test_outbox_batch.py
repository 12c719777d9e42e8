"""The outbox's batched insert and the relay's wake-ups, against PostgreSQL and JetStream."""

import asyncio
import time
import uuid

import asyncpg
import nats
import pytest

from fairway_bus.bootstrap import ensure_streams_and_consumers
from fairway_contracts import streams
from fairway_contracts.events import ProjectChanged
from fairway_store import OutboxRelay, add_many_to_outbox, add_to_outbox, create_pool, migrate
from fairway_store.outbox import ordering_key

pytestmark = pytest.mark.infra


async def _setup(database_url: str, nats_url: str, schema: str):
    conn = await asyncpg.connect(database_url)
    await migrate(conn, schema, None)
    await conn.close()
    pool = await create_pool(database_url, schema)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams_and_consumers(js)
    return pool, nc, js


def _event(token: str, n: int) -> ProjectChanged:
    pid = f"{token}-{n}"
    return ProjectChanged(event_id=pid, project_id=pid, name=f"p{n}")


async def test_many_events_in_one_insert_keep_their_order_and_drop_repeats(database_url,
                                                                         nats_url):
    pool, nc, js = await _setup(database_url, nats_url, "outboxbatch")
    token = uuid.uuid4().hex[:8]
    sub = await js.subscribe(f"fairway.org.test.{token}.*", stream=streams.ORG.name,
                             ordered_consumer=True)
    order = [7, 3, 9, 0, 5, 1, 8, 2, 6, 4] * 3  # not sorted: the given order is kept
    order = list(dict.fromkeys(order))
    items = [(f"fairway.org.test.{token}.{n}", _event(token, n), f"{token}-{n}", None)
             for n in order]
    items.append(items[0])  # the same event twice in one batch: kept once
    async with pool.acquire() as c, c.transaction():
        await add_many_to_outbox(c, items)
        await add_many_to_outbox(c, [])
        headers = await c.fetchval("SELECT headers FROM outbox WHERE msg_id = $1",
                                   f"{token}-{order[0]}")
    assert isinstance(headers, dict)  # stored as a JSON object, as add_to_outbox does
    relay = OutboxRelay(database_url, pool, "outboxbatch", js)
    await relay.start()
    names = [ProjectChanged.model_validate_json((await sub.next_msg(timeout=5)).data).name
             for _ in order]
    assert names == [f"p{n}" for n in order]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.5)
    await relay.stop()
    await pool.close()
    await nc.close()


class _CommitsDuringPublish:
    """A JetStream context whose first publish waits for another transaction to commit an
    outbox row (and its NOTIFY to arrive) while the relay is in the middle of a round."""

    def __init__(self, js, commit):
        self.js, self.commit, self.done = js, commit, False

    async def publish_async(self, *args, **kwargs):
        if not self.done:
            self.done = True
            await self.commit()
        return await self.js.publish_async(*args, **kwargs)


async def test_a_commit_notified_during_a_relay_round_is_not_left_for_the_poll(database_url,
                                                                             nats_url):
    pool, nc, js = await _setup(database_url, nats_url, "outboxwake")
    token = uuid.uuid4().hex[:8]
    sub = await js.subscribe(f"fairway.org.test.{token}.*", stream=streams.ORG.name,
                             ordered_consumer=True)
    relay: OutboxRelay | None = None

    async def commit_second() -> None:
        async with pool.acquire() as c:
            await add_to_outbox(c, f"fairway.org.test.{token}.1", _event(token, 1),
                                msg_id=f"{token}-1")
        deadline = time.monotonic() + 5
        while not relay._wake.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the NOTIFY arrives mid-round

    # A poll far longer than the test waits: only the wake-up can publish the second row.
    relay = OutboxRelay(database_url, pool, "outboxwake",
                        _CommitsDuringPublish(js, commit_second), poll_seconds=60)
    await relay.start()
    await asyncio.sleep(0.3)  # listening
    async with pool.acquire() as c:
        await add_to_outbox(c, f"fairway.org.test.{token}.0", _event(token, 0),
                            msg_id=f"{token}-0")
    first = await sub.next_msg(timeout=5)
    second = await sub.next_msg(timeout=5)
    assert [ProjectChanged.model_validate_json(m.data).name for m in (first, second)] == [
        "p0", "p1"]
    await relay.stop()
    await pool.close()
    await nc.close()



class _AckLostOnce:
    """A JetStream context whose `fail_at`-th publish (counting from 1) reaches the broker
    but whose ack never comes back (the ack timed out, as on a slow broker); every other
    publish is plain."""

    def __init__(self, js, fail_at: int):
        self.js, self.fail_at, self.count = js, fail_at, 0

    async def publish_async(self, *args, **kwargs):
        self.count += 1
        sent = await self.js.publish_async(*args, **kwargs)
        if self.count != self.fail_at:
            return sent
        await sent  # stored
        lost = asyncio.get_running_loop().create_future()
        lost.set_exception(nats.errors.TimeoutError())
        return lost


@pytest.mark.parametrize("fail_at", [None, 7])
async def test_pipelined_rounds_publish_every_row_once_in_commit_order(database_url, nats_url,
                                                                     fail_at):
    """Small rounds, several in flight: all 60 events arrive in the order they were
    committed, each once; when one publish's ack is lost, it and everything after it is
    published again, and JetStream drops the repeats, so still each once and in order."""
    pool, nc, js = await _setup(database_url, nats_url, "outboxpipe")
    token = uuid.uuid4().hex[:8]
    sub = await js.subscribe(f"fairway.org.test.{token}.*", stream=streams.ORG.name,
                             ordered_consumer=True)
    relay = OutboxRelay(database_url, pool, "outboxpipe",
                        js if fail_at is None else _AckLostOnce(js, fail_at),
                        batch=5, max_in_flight=3, poll_seconds=0.2)
    await relay.start()
    for first in range(0, 60, 4):  # commits of 4 events while rounds are in flight
        async with pool.acquire() as c, c.transaction():
            await add_many_to_outbox(c, [(f"fairway.org.test.{token}.{n}", _event(token, n),
                                          f"{token}-{n}", None)
                                         for n in range(first, first + 4)])
        relay.wake()
    names = [ProjectChanged.model_validate_json((await sub.next_msg(timeout=5)).data).name
             for _ in range(60)]
    assert names == [f"p{n}" for n in range(60)]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.5)
    deadline = time.monotonic() + 5
    unmarked = None
    while time.monotonic() < deadline:
        async with pool.acquire() as c:
            unmarked = await c.fetchval(
                "SELECT count(*) FROM outbox WHERE msg_id LIKE $1",
                f"{token}-%")
        if unmarked == 0:
            break
        await asyncio.sleep(0.05)
    assert unmarked == 0
    await relay.stop()
    await pool.close()
    await nc.close()


async def test_two_relays_on_one_outbox_publish_each_event_once_in_commit_order(database_url,
                                                                              nats_url):
    """Two instances of a service relay the same outbox at once (the lock only covers a
    read): every event reaches the stream once, and each writer's events in the order it
    committed them, whichever relay's copy arrived first."""
    pool, nc, js = await _setup(database_url, nats_url, "outboxtwo")
    nc2 = await nats.connect(nats_url)
    token = uuid.uuid4().hex[:8]
    sub = await js.subscribe(f"fairway.org.test.{token}.*", stream=streams.ORG.name,
                             ordered_consumer=True)
    relays = [OutboxRelay(database_url, pool, "outboxtwo", context, batch=3, max_in_flight=2,
                          poll_seconds=0.05) for context in (js, nc2.jetstream())]
    for relay in relays:
        await relay.start()

    async def writer(w: int) -> None:  # one workload's events, committed one after another
        for n in range(20):
            async with pool.acquire() as c, c.transaction():
                # a subject each: the organisation stream keeps the last message per subject
                await add_to_outbox(c, f"fairway.org.test.{token}.w{w}n{n}",
                                    _event(token, w * 100 + n), msg_id=f"{token}-{w}-{n}")
            relays[n % 2].wake()
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(4)))
    names = [ProjectChanged.model_validate_json((await sub.next_msg(timeout=5)).data).name
             for _ in range(80)]
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.5)
    for w in range(4):
        assert [n for n in names if int(n[1:]) // 100 == w] == [
            f"p{w * 100 + n}" for n in range(20)]
    for relay in relays:
        await relay.stop()
    await pool.close()
    await nc2.close()
    await nc.close()


class _LosesTheFirstPublish:
    """A JetStream context that loses a workload's first publish the way a dying NATS server
    does (it never arrives and its ack never comes) and passes everything else on."""

    def __init__(self, js, lost_subject: str):
        self.js, self.lost_subject, self.lost = js, lost_subject, False

    async def publish_async(self, subject, *args, **kwargs):
        if subject == self.lost_subject and not self.lost:
            self.lost = True
            return asyncio.get_running_loop().create_future()  # never acknowledged
        return await self.js.publish_async(subject, *args, **kwargs)


def test_the_ordering_key_is_the_workload_a_subject_names():
    wid = str(uuid.uuid4())
    assert ordering_key(f"fairway.phase.team-a.{wid}.Running") == wid
    assert ordering_key(f"fairway.workload.action.stop.team-a.{wid}") == wid
    assert ordering_key("fairway.scheduler.queue.project.team-a.default") == (
        "fairway.scheduler.queue.project.team-a.default")


async def test_a_lost_publish_does_not_let_its_workloads_later_events_overtake_it(
        database_url, nats_url):
    """Event 1 of a workload is lost in flight; events 2 and 3 of it, committed meanwhile, wait
    for its ack instead of reaching the stream first; when the ack times out, 1, 2 and 3 go in
    order, while another workload's events flow on."""
    pool, nc, js = await _setup(database_url, nats_url, "outboxorder")
    token = uuid.uuid4().hex[:8]
    wid, other = str(uuid.uuid4()), str(uuid.uuid4())
    sub = await js.subscribe(f"fairway.org.test.{token}.>", stream=streams.ORG.name,
                             ordered_consumer=True)
    subject = f"fairway.org.test.{token}.{wid}"

    def item(subject_: str, n: int):
        return (f"{subject_}.{n}", _event(token, n), f"{token}-{n}", None)

    async with pool.acquire() as c:
        await add_many_to_outbox(c, [item(subject, 1)])
    relay = OutboxRelay(database_url, pool, "outboxorder",
                        _LosesTheFirstPublish(js, f"{subject}.1"), ack_timeout_seconds=1.5)
    await relay.start()
    await asyncio.sleep(0.3)  # event 1 is in flight (and lost)
    async with pool.acquire() as c:
        await add_many_to_outbox(c, [item(subject, 2), item(f"fairway.org.test.{token}.{other}", 9),
                                     item(subject, 3)])
    first = await sub.next_msg(timeout=5)  # the other workload's event is not held up
    assert first.subject.endswith(f"{other}.9")
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.5)  # 2 and 3 wait for 1
    got = [(await sub.next_msg(timeout=5)).subject.rsplit(".", 1)[1] for _ in range(3)]
    assert got == ["1", "2", "3"]
    await relay.stop()
    await pool.close()
    await nc.close()


class _RefusesTheFirstPublish(_LosesTheFirstPublish):
    """Refuses a workload's first publish at once, as a clustered stream electing a new leader
    does ("no response from stream"), while the next message, a moment later, is stored."""

    async def publish_async(self, subject, *args, **kwargs):
        if subject == self.lost_subject and not self.lost:
            self.lost = True
            refused = asyncio.get_running_loop().create_future()
            refused.set_exception(nats.js.errors.NoStreamResponseError())
            return refused
        return await self.js.publish_async(subject, *args, **kwargs)


async def test_a_refused_publish_is_not_overtaken_by_its_workloads_next_row_of_the_round(
        database_url, nats_url):
    """Two rows of one workload read in one round: the first is refused by the stream, and
    the second would be stored; it is not sent until the first is, so the stream holds 1, 2."""
    pool, nc, js = await _setup(database_url, nats_url, "outboxround")
    token = uuid.uuid4().hex[:8]
    wid = str(uuid.uuid4())
    sub = await js.subscribe(f"fairway.org.test.{token}.>", stream=streams.ORG.name,
                             ordered_consumer=True)
    subject = f"fairway.org.test.{token}.{wid}"
    async with pool.acquire() as c:
        await add_many_to_outbox(c, [(f"{subject}.{n}", _event(token, n), f"{token}-{n}", None)
                                     for n in (1, 2)])
    relay = OutboxRelay(database_url, pool, "outboxround",
                        _RefusesTheFirstPublish(js, f"{subject}.1"))
    await relay.start()
    got = [(await sub.next_msg(timeout=5)).subject.rsplit(".", 1)[1] for _ in range(2)]
    assert got == ["1", "2"]
    await relay.stop()
    await pool.close()
    await nc.close()


async def test_acknowledged_rows_are_deleted_by_the_next_read_or_soon_after(database_url,
                                                                           nats_url):
    """Events committed one at a time: the rows an acknowledged round published are deleted
    by a later round's read, in the same statement, not by one of their own; and when no
    round follows, by the deleter a moment later. None is sent twice meanwhile."""
    pool, nc, js = await _setup(database_url, nats_url, "outboxdelete")
    token = uuid.uuid4().hex[:8]
    sub = await js.subscribe(f"fairway.org.test.{token}.*", stream=streams.ORG.name,
                             ordered_consumer=True)

    async def left() -> int:
        async with pool.acquire() as c:
            return await c.fetchval("SELECT count(*) FROM outbox WHERE msg_id LIKE $1",
                                    f"{token}-%")

    async def one(relay: OutboxRelay, n: int) -> None:
        before = relay.published
        async with pool.acquire() as c:
            await add_to_outbox(c, f"fairway.org.test.{token}.{n}", _event(token, n),
                                msg_id=f"{token}-{n}")
        relay.wake()
        msg = await sub.next_msg(timeout=5)
        assert msg.headers["Nats-Msg-Id"] == f"{token}-{n}"
        deadline = time.monotonic() + 5
        while relay.published == before and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert relay.published == before + 1

    # the deleter 30 s away: only reads delete
    relay = OutboxRelay(database_url, pool, "outboxdelete", js, poll_seconds=30,
                        delete_delay=30)
    await relay.start()
    for n in range(4):
        await one(relay, n)
        # the rows before this one went with a later read; this one waits for the next
        # (unless the read its own commit's NOTIFY woke came after its ack)
        assert await left() <= 1
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.3)  # a row waiting to be deleted is not read again
    await relay.stop()  # its last drain deletes what waits
    assert await left() == 0

    relay = OutboxRelay(database_url, pool, "outboxdelete", js, poll_seconds=30,
                        delete_delay=0.05)
    await relay.start()
    await one(relay, 4)
    deadline = time.monotonic() + 2
    while await left() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await left() == 0  # no read followed: the deleter's
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.3)
    await relay.stop()
    await pool.close()
    await nc.close()
