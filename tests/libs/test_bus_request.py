"""The bus's one request helper against a real NATS server: the reply's payload, or NoReply
(not connected, nobody listening, too late) and never a client library's own exception."""

import asyncio
import uuid

import nats
import pytest

from fairway_bus import NoReply, connection, make_broker, request

pytestmark = pytest.mark.infra


async def test_a_request_returns_the_reply_or_says_why_none_came(nats_url):
    nc = await nats.connect(nats_url)
    subject = f"test.request.{uuid.uuid4().hex[:8]}"

    async def echo(msg):
        await msg.respond(b"re: " + msg.data)

    async def slow(msg):
        await asyncio.sleep(1)

    try:
        await nc.subscribe(subject + ".echo", cb=echo)
        await nc.subscribe(subject + ".slow", cb=slow)
        assert await request(nc, subject + ".echo", b"hi", timeout=2) == b"re: hi"
        with pytest.raises(NoReply) as nobody:
            await request(nc, subject + ".nobody", b"hi", timeout=0.5)
        assert nobody.value.connected and nobody.value.reason == "no responders"
        with pytest.raises(NoReply) as late:
            await request(nc, subject + ".slow", b"hi", timeout=0.2)
        assert late.value.connected and "0.2" in late.value.reason
    finally:
        await nc.close()
    with pytest.raises(NoReply) as closed:
        await request(nc, subject + ".echo", b"hi", timeout=2)
    assert not closed.value.connected
    with pytest.raises(NoReply):
        await request(None, subject + ".echo", b"hi", timeout=2)


async def test_a_responder_that_arrives_within_the_timeout_is_answered(nats_url):
    """A responder moving to another server of the cluster is away for a moment: the request
    asks again until its timeout instead of failing at the first 'no responders'."""
    nc = await nats.connect(nats_url)
    subject = f"test.request.{uuid.uuid4().hex[:8]}"

    async def echo(msg):
        await msg.respond(b"re: " + msg.data)

    async def responder_back_later():
        await asyncio.sleep(0.3)
        await nc.subscribe(subject, cb=echo)

    try:
        back = asyncio.create_task(responder_back_later())
        assert await request(nc, subject, b"hi", timeout=3) == b"re: hi"
        await back
    finally:
        await nc.close()


async def test_the_brokers_connection_is_none_until_it_connects(nats_url):
    broker = make_broker(nats_url, "test")
    assert connection(broker) is None
    await broker.connect()
    try:
        assert connection(broker) is not None and connection(broker).is_connected
    finally:
        await broker.stop()
    assert connection(broker) is None


async def test_a_request_whose_reply_was_lost_is_asked_again_at_half_time(nats_url):
    """A request (or its reply) on a server that died is lost for good: the helper asks once
    more when half its timeout passed, so the answer to the second asking is returned."""
    nc = await nats.connect(nats_url)
    subject = f"test.request.{uuid.uuid4().hex[:8]}"
    asked: list[float] = []

    async def deaf_the_first_time(msg):
        asked.append(asyncio.get_running_loop().time())
        if len(asked) > 1:
            await msg.respond(b"re: " + msg.data)

    try:
        await nc.subscribe(subject, cb=deaf_the_first_time)
        assert await request(nc, subject, b"hi", timeout=2) == b"re: hi"
        assert len(asked) == 2 and 0.9 < asked[1] - asked[0] < 1.5
        asked.clear()

        async def deaf(msg):
            asked.append(0.0)

        await nc.subscribe(subject + ".deaf", cb=deaf)
        with pytest.raises(NoReply) as late:
            await request(nc, subject + ".deaf", b"hi", timeout=1)
        assert late.value.connected and len(asked) == 2  # asked twice, never more
    finally:
        await nc.close()
