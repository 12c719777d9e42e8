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

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from fairway_bus.publish import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import DeadLetter
from fairway_contracts.streams import ConsumerSpec
from fairway_contracts.workloads import utcnow
from fairway_telemetry import extract_context, workload_attributes

log = logging.getLogger("fairway.bus")
_tracer = trace.get_tracer("fairway.bus")


@dataclass(frozen=True)
class Delivery:
    """What a handler may know about the message beyond its payload."""

    msg_id: str  # Nats-Msg-Id of the publisher, or stream:sequence when absent
    subject: str
    delivered: int  # 1 on first delivery
    headers: dict[str, str]
    stream_sequence: int


class FairwayBroker(NatsBroker):
    """A FastStream NATS broker that also runs Fairway's durable pull consumers.

    Core-NATS subscribers (request/reply, heartbeats) are FastStream's own. Durable work
    consumers run our pull loop (see `DurableConsumer`): FastStream's batch mode waits to fill
    a batch, and its non-batch mode handles a fetched batch concurrently without per-key order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durable_consumers: list[DurableConsumer] = []

    async def start(self) -> None:
        await super().start()
        js = jetstream(self)
        for consumer in self.durable_consumers:
            await consumer.start(js)

    async def stop(self, *args: Any, **kwargs: Any) -> None:
        for consumer in self.durable_consumers:
            await consumer.stop()
        await super().stop(*args, **kwargs)


def make_broker(nats_url: str, service: str, **kwargs: Any) -> FairwayBroker:
    """A broker whose every publish and consume carries W3C trace context in its headers."""
    return FairwayBroker(
        nats_url,
        name=f"fairway-{service}",
        middlewares=[NatsTelemetryMiddleware(tracer_provider=trace.get_tracer_provider())],
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,  # "Received"/"Processed" per message is too chatty for INFO
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        **kwargs,
    )


class DurableConsumer:
    """A pull loop on one durable consumer (created by the bootstrap step).

    Fetches up to `4 * parallel` messages (returning as soon as any are there), groups them by
    ordering key, handles groups concurrently (at most `parallel` at a time) and each group's
    messages in stream order, and fetches again only when the whole batch is settled, so one
    workload's messages are never handled out of order.
    """

    def __init__(self, broker: NatsBroker, spec: ConsumerSpec, model: type[BaseModel],
                 handler: Callable[[Any, Delivery], Awaitable[None]], fetch_timeout: float):
        self.broker = broker
        self.spec = spec
        self.model = model
        self.handler = handler
        self.fetch_timeout = fetch_timeout
        self._task: asyncio.Task | None = None
        self._running = False
        self._handling = False
        self._slots = asyncio.Semaphore(max(1, spec.parallel))

    async def start(self, js) -> None:
        self._subscription = await js.pull_subscribe_bind(self.spec.durable, self.spec.stream)
        self._running = True
        self._task = asyncio.create_task(self._loop(), name=f"consume-{self.spec.durable}")

    async def stop(self) -> None:
        # Finish the batch in hand (acks included), then stop fetching.
        self._running = False
        if self._task is not None and not self._handling:
            self._task.cancel()  # idle in a fetch: nothing in hand to finish
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=self.fetch_timeout + 30)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                log.exception("consumer %s ended badly", self.spec.durable)
            self._task = None
        with contextlib.suppress(Exception):
            await self._subscription.unsubscribe()

    async def _loop(self) -> None:
        batch = max(1, self.spec.parallel) * 4
        while self._running:
            try:
                messages = await self._subscription.fetch(batch=batch,
                                                          timeout=self.fetch_timeout)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: the client reconnects
                log.warning("fetch from %s failed: %r", self.spec.durable, exc)
                await asyncio.sleep(0.5)
                continue
            groups: dict[str, list[Msg]] = defaultdict(list)
            for raw in messages:
                groups[self.spec.ordering_key(raw.subject)].append(raw)
            self._handling = True
            try:
                # shielded: a stop waits for the batch in hand rather than cutting it
                await asyncio.shield(
                    asyncio.gather(*(self._handle_group(g) for g in groups.values())))
            finally:
                self._handling = False

    async def _handle_group(self, messages: list[Msg]) -> None:
        async with self._slots:
            for raw in messages:
                try:
                    await self._handle_one(raw)
                except Exception:  # never lose the loop to one message
                    log.exception("settling a message of %s failed", self.spec.durable)

    async def _handle_one(self, raw: Msg) -> None:
        meta = raw.metadata
        headers = dict(raw.headers or {})
        delivery = Delivery(
            msg_id=headers.get("Nats-Msg-Id") or f"{meta.stream}:{meta.sequence.stream}",
            subject=raw.subject,
            delivered=meta.num_delivered,
            headers=headers,
            stream_sequence=meta.sequence.stream,
        )
        with _tracer.start_as_current_span(
            f"{self.spec.durable} handle", context=extract_context(headers),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.destination": raw.subject,
                        "messaging.consumer": self.spec.durable,
                        "messaging.delivery_count": delivery.delivered},
        ):
            await _handle(self.broker, self.spec, self.model, self.handler, raw, delivery)


def durable_subscriber[M: BaseModel](
    broker: NatsBroker,
    spec: ConsumerSpec,
    model: type[M],
    *,
    fetch_timeout: float = 5.0,
) -> Callable[[Callable[[M, Delivery], Awaitable[None]]], Callable[[M, Delivery],
                                                                     Awaitable[None]]]:
    """Register `handler(payload, delivery)` on the durable consumer `spec`.

    Messages of different ordering keys (`spec.ordering_key`: by default one workload) are
    handled concurrently, up to `spec.parallel` at a time; messages of one key one after
    another, in stream order.
    """
    if not isinstance(broker, FairwayBroker):
        raise TypeError("durable consumers need the broker from fairway_bus.make_broker")

    def register(handler: Callable[[M, Delivery], Awaitable[None]]):
        broker.durable_consumers.append(
            DurableConsumer(broker, spec, model, handler, fetch_timeout))
        return handler

    return register


async def _handle[M: BaseModel](broker: NatsBroker, spec: ConsumerSpec, model: type[M],
                                handler: Callable[[M, Delivery], Awaitable[None]], raw: Msg,
                                delivery: Delivery) -> None:
    """Run the handler on one message and settle it: ack, nak with delay, or dead-letter."""
    try:
        payload = model.model_validate_json(raw.data)
    except ValidationError as exc:
        # A payload that does not parse never will: straight to the dead letters.
        await _dead_letter(broker, spec, delivery, raw.data, f"invalid payload: {exc}")
        await raw.term()
        return
    # what the message is about, on the consumer span: searchable in Jaeger
    trace.get_current_span().set_attributes(workload_attributes(payload))
    try:
        await handler(payload, delivery)
    except Exception as exc:
        if delivery.delivered >= spec.max_deliver:
            log.exception(
                "giving up on message after %d deliveries", delivery.delivered,
                extra={"fields": {"consumer": spec.durable, "subject": delivery.subject}},
            )
            await _dead_letter(broker, spec, delivery, raw.data, repr(exc))
            await raw.term()
        else:
            delay = spec.retry_delay(delivery.delivered)
            log.warning(
                "handler failed (delivery %d of %d), retrying in %.1fs: %r",
                delivery.delivered, spec.max_deliver, delay, exc,
                extra={"fields": {"consumer": spec.durable, "subject": delivery.subject}},
            )
            await raw.nak(delay=delay)
        return
    await raw.ack()


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
