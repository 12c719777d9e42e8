"""A fetch takes the messages already in its subscription's queue at once, against a real
JetStream: the same messages, in order, with the library's wait only when none is there."""

import uuid

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from fairway_bus.fetching import take_ready_messages

pytestmark = pytest.mark.infra


async def test_a_fetch_takes_queued_messages_without_the_library_wait_for_each(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"FETCHTEST_{uuid.uuid4().hex[:8]}"
    subject = f"fetchtest.{name}"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    try:
        await js.add_consumer(name, ConsumerConfig(durable_name="reader",
                                                   ack_policy=AckPolicy.EXPLICIT))
        for n in range(200):
            await js.publish(subject, str(n).encode())
        psub = await js.pull_subscribe_bind("reader", name)
        waits = []
        library_next = psub._sub.next_msg

        async def counted(timeout=1.0):
            waits.append(timeout)
            return await library_next(timeout)

        psub._sub.next_msg = counted  # what take_ready_messages falls back on
        assert take_ready_messages(psub)

        got = []
        while len(got) < 200:
            for msg in await psub.fetch(batch=90, timeout=2):
                got.append(int(msg.data))
                await msg.ack()
        assert got == list(range(200))
        # A wait when the queue was empty (the first message of each fetch, at most, and
        # the end of a short one), not one per message.
        assert len(waits) <= 6, waits
        assert psub._sub._pending_size == 0 and psub._sub._pending_queue.empty()

        with pytest.raises(nats.errors.TimeoutError):  # nothing left: the library's timeout
            await psub.fetch(batch=10, timeout=0.3)
    finally:
        await js.delete_stream(name)
        await nc.close()


def test_a_subscription_of_another_shape_is_left_as_it_is():
    class Elsewhere:
        pass

    assert not take_ready_messages(Elsewhere())
