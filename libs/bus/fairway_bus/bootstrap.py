"""The explicit bootstrap step: create or update every stream and durable consumer.

Services never declare streams or consumers as a side effect of starting; run this once per
deployment change (`python -m fairway_bus.bootstrap`, which `fairway up` does first).
"""

import asyncio
import logging
import os
import sys

import nats
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from fairway_contracts.streams import CONSUMERS, STREAMS, ConsumerSpec, StreamSpec

log = logging.getLogger("fairway.bus.bootstrap")


def stream_config(spec: StreamSpec) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=spec.max_age_seconds,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        duplicate_window=spec.duplicate_window_seconds,
        num_replicas=int(os.environ.get("FAIRWAY_STREAM_REPLICAS", "1")),
    )


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    filters = list(spec.filter_subjects)
    return ConsumerConfig(
        durable_name=spec.durable,
        name=spec.durable,
        description=spec.description,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=(
            DeliverPolicy.LAST_PER_SUBJECT if spec.deliver_last_per_subject else DeliverPolicy.ALL
        ),
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


async def ensure_streams_and_consumers(js: JetStreamContext) -> None:
    for spec in STREAMS:
        config = stream_config(spec)
        try:
            await js.stream_info(spec.name)
            await js.update_stream(config)
            log.info("stream updated", extra={"fields": {"stream": spec.name}})
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream created", extra={"fields": {"stream": spec.name}})
    for cons in CONSUMERS:
        # add_consumer creates, or updates the editable fields of, an existing durable.
        await js.add_consumer(cons.stream, consumer_config(cons))
        log.info("consumer ready", extra={"fields": {"consumer": cons.durable}})


async def bootstrap(nats_url: str) -> None:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        await ensure_streams_and_consumers(nc.jetstream())
    finally:
        await nc.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    try:
        asyncio.run(bootstrap(url))
    except Exception as exc:  # report cleanly for `fairway up`
        print(f"bus bootstrap failed against {url}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"streams and consumers ready on {url}")


if __name__ == "__main__":
    main()
