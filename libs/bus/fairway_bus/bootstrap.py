"""The explicit bootstrap step: create or update every stream and durable consumer.

Services never declare streams or consumers as a side effect of starting; run this once per
deployment change (`python -m fairway_bus.bootstrap`, which `fairway up` does first). That
entry reads its two settings, NATS_URL and FAIRWAY_STREAM_REPLICAS, through `BootstrapSettings`.
"""

import asyncio
import logging
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
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from fairway_bus.settings import NatsClientSettings, nats_servers
from fairway_contracts.streams import CONSUMERS, STREAMS, ConsumerSpec, StreamSpec

log = logging.getLogger("fairway.bus.bootstrap")


class BootstrapSettings(NatsClientSettings):
    """What `python -m fairway_bus.bootstrap` reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222", alias="NATS_URL",
        description="the NATS server (JetStream enabled) whose streams and consumers are "
                    "made; the servers of a cluster separated by commas")
    stream_replicas: int = Field(
        default=1, ge=1, alias="FAIRWAY_STREAM_REPLICAS",
        description="copies of every stream in a NATS cluster (3 in deploy/: a stream "
                    "survives the loss of one server)")


    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, value: str) -> str:
        nats_servers(value)  # names the entry that is not a server URL
        return value


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
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
        num_replicas=replicas,
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


async def ensure_streams_and_consumers(js: JetStreamContext, replicas: int = 1) -> None:
    for spec in STREAMS:
        config = stream_config(spec, replicas)
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


async def bootstrap(nats_url: str, replicas: int = 1,
                    settings: NatsClientSettings | None = None) -> None:
    options = settings.nats_connect_options() if settings is not None else {}
    nc = await nats.connect(nats_servers(nats_url), connect_timeout=5, max_reconnect_attempts=3,
                            **options)
    try:
        await ensure_streams_and_consumers(nc.jetstream(), replicas)
    finally:
        await nc.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = BootstrapSettings()
    except ValidationError as exc:
        print(f"bus bootstrap: {exc}", file=sys.stderr)
        sys.exit(1)
    url = settings.nats_url
    try:
        asyncio.run(bootstrap(url, settings.stream_replicas, settings))
    except Exception as exc:  # report cleanly for `fairway up`
        print(f"bus bootstrap failed against {url}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"streams and consumers ready on {url}")


if __name__ == "__main__":
    main()
