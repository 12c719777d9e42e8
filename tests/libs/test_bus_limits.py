"""No message can take a service off the bus. nats-py checks only a payload against the server's
max payload; the server counts the headers too, answers an oversized message with
`-ERR 'Maximum Payload Violation'` and closes the connection, which nats-py never reopens. A
reply just under the limit plus its trace headers did exactly that to the policy service."""

import asyncio
import uuid

import pytest

from fairway_bus import MessageTooLarge, NoReply, connection, make_broker, request
from fairway_bus.limits import message_size

pytestmark = pytest.mark.infra


def test_the_size_the_server_counts_includes_the_header_block():
    assert message_size(b"abc", None) == 3
    assert message_size(b"abc", {"k": "v"}) == 3 + len(b"NATS/1.0\r\nk: v\r\n\r\n")


async def test_an_oversized_publish_is_refused_here_and_the_connection_stays_up(nats_url):
    broker = make_broker(nats_url, "test-limits")
    await broker.connect()
    nc = connection(broker)
    try:
        just_under = b"x" * (nc.max_payload - 10)  # passes nats-py's own check
        with pytest.raises(MessageTooLarge) as refused:
            await nc.publish("test.limits.sink", just_under,
                             headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        assert refused.value.limit == nc.max_payload and refused.value.size > nc.max_payload
        await nc.flush(timeout=2)
        await asyncio.sleep(0.3)
        assert nc.is_connected and not nc.is_closed
    finally:
        await broker.stop()


async def test_a_reply_too_large_for_the_bus_leaves_the_responder_connected(nats_url):
    """The original defect: a responder's reply over the limit closed its connection for good
    and every later request found no responder."""
    subject = f"test.limits.{uuid.uuid4().hex[:8]}"
    responder = make_broker(nats_url, "test-responder")

    @responder.subscriber(subject)
    async def answer(body: bytes) -> bytes:
        if body == b"huge":
            return b"y" * (connection(responder).max_payload - 5)
        return b"re:" + body

    await responder.connect()
    await responder.start()
    asker = make_broker(nats_url, "test-asker")
    await asker.connect()
    try:
        with pytest.raises(NoReply):
            await request(connection(asker), subject, b"huge", timeout=1)
        await asyncio.sleep(0.3)
        assert connection(responder).is_connected
        assert await request(connection(asker), subject, b"small", timeout=2) == b"re:small"
    finally:
        await asker.stop()
        await responder.stop()
