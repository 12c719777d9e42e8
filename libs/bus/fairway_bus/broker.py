"""The FastStream NATS broker factory and the one way Fairway consumes a durable stream.

Every work subscription is a durable pull consumer created by the bootstrap step. Handlers get
the parsed payload and a `Delivery`; the wrapper here owns acknowledgement:

- the handler returns → ack (after its transaction committed);
- it raises → nak with a delay that grows with the delivery count (a plain nak would
  redeliver at once);
- it raises on the last allowed delivery → the message goes to the dead-letter subject and is
  terminated, so one poison message never blocks a consumer for ever.

Redelivery is normal (acks race ack_wait, services restart), so handlers must be idempotent:
`fairway_store.inbox` records processed message ids in the handler's own transaction.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from fairway_bus.publish import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import DeadLetter
from fairway_contracts.streams import ConsumerSpec
from fairway_contracts.workloads import utcnow

log = logging.getLogger("fairway.bus")


@dataclass(frozen=True)
class Delivery:
    """What a handler may know about the message beyond its payload."""

    msg_id: str  # Nats-Msg-Id of the publisher, or stream:sequence when absent
    subject: str
    delivered: int  # 1 on first delivery
    headers: dict[str, str]
    stream_sequence: int


def make_broker(nats_url: str, service: str, **kwargs: Any) -> NatsBroker:
    """A broker whose every publish and consume carries W3C trace context in its headers."""
    return NatsBroker(
        nats_url,
        name=f"fairway-{service}",
        middlewares=[NatsTelemetryMiddleware(tracer_provider=trace.get_tracer_provider())],
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,  # "Received"/"Processed" per message is too chatty for INFO
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        **kwargs,
    )


def durable_subscriber[M: BaseModel](
    broker: NatsBroker,
    spec: ConsumerSpec,
    model: type[M],
    *,
    fetch_timeout: float = 1.0,
) -> Callable[[Callable[[M, Delivery], Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """Register `handler(payload, delivery)` on the durable consumer `spec`."""

    if len(spec.filter_subjects) != 1:
        # FastStream binds a pull subscription to one subject; refuse rather than drop filters.
        raise ValueError(f"consumer {spec.durable}: exactly one filter subject is supported, "
                         f"got {spec.filter_subjects}")

    def register(handler: Callable[[M, Delivery], Awaitable[None]]):
        subscriber = broker.subscriber(
            spec.filter_subjects[0],
            stream=JStream(spec.stream, declare=False),
            durable=spec.durable,
            # batch_size 1 and one worker: messages of a consumer are handled in stream order,
            # so per-workload order holds.
            pull_sub=PullSub(batch_size=1, timeout=fetch_timeout),
            ack_policy=AckPolicy.MANUAL,
            no_reply=True,
            title=spec.durable,
            description=spec.description,
        )

        @subscriber
        async def consume(body: Any, msg: NatsMessage) -> None:
            raw = msg.raw_message
            meta = raw.metadata
            headers = dict(raw.headers or {})
            delivery = Delivery(
                msg_id=headers.get("Nats-Msg-Id") or f"{meta.stream}:{meta.sequence.stream}",
                subject=raw.subject,
                delivered=meta.num_delivered,
                headers=headers,
                stream_sequence=meta.sequence.stream,
            )
            try:
                payload = model.model_validate_json(raw.data)
            except ValidationError as exc:
                # A payload that does not parse never will: straight to the dead letters.
                await _dead_letter(broker, spec, delivery, raw.data, f"invalid payload: {exc}")
                await msg.reject()
                return
            try:
                await handler(payload, delivery)
            except Exception as exc:
                if delivery.delivered >= spec.max_deliver:
                    log.exception(
                        "giving up on message after %d deliveries", delivery.delivered,
                        extra={"fields": {"consumer": spec.durable, "subject": delivery.subject}},
                    )
                    await _dead_letter(broker, spec, delivery, raw.data, repr(exc))
                    await msg.reject()
                else:
                    delay = spec.retry_delay(delivery.delivered)
                    log.warning(
                        "handler failed (delivery %d of %d), retrying in %.1fs: %r",
                        delivery.delivered, spec.max_deliver, delay, exc,
                        extra={"fields": {"consumer": spec.durable, "subject": delivery.subject}},
                    )
                    await msg.nack(delay=delay)
                return
            await msg.ack()

        return consume

    return register


async def _dead_letter(broker: NatsBroker, spec: ConsumerSpec, delivery: Delivery,
                       data: bytes, error: str) -> None:
    letter = DeadLetter(
        consumer=spec.durable,
        stream=spec.stream,
        subject=delivery.subject,
        stream_sequence=delivery.stream_sequence,
        deliveries=delivery.delivered,
        error=error[:2000],
        payload=data.decode(errors="replace"),
        headers=delivery.headers,
        failed_at=utcnow(),
    )
    await publish_model(
        jetstream(broker),
        subjects.deadletter(spec.durable),
        letter,
        msg_id=f"dead:{spec.durable}:{delivery.stream_sequence}",
    )


def jetstream(broker: NatsBroker):
    """The JetStream context of the broker's own (connected) NATS connection."""
    return broker.config.connection_state.stream
