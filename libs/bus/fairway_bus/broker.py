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

A batch handler (`durable_batch_subscriber`) gets every message of a fetch at once, in stream
order, to apply them in one transaction: the busy projections (thousands of phase and
pod-group events a minute) pay one transaction, not one each. If it raises, the batch is
handled again one message at a time, so the settling above stays per message and one poison
message costs only itself.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats.aio.msg import Msg
from opentelemetry import trace
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from fairway_bus.fetching import take_ready_messages
from fairway_bus.limits import bound_publishes
from fairway_bus.publish import publish_model
from fairway_bus.settings import nats_servers
from fairway_contracts import subjects
from fairway_contracts.events import DeadLetter
from fairway_contracts.streams import ConsumerSpec
from fairway_contracts.workloads import utcnow
from fairway_telemetry import consumer_span, spans_recorded, workload_attributes, workload_context

log = logging.getLogger("fairway.bus")
_tracer = trace.get_tracer("fairway.bus")

# What each durable consumer fetched: messages over fetches is how well its batches fill (a
# batch handler pays one transaction per fetch; a busy stream read a message at a time pays
# one per message).
FETCHES = Counter("fairway_consumer_fetches",
                  "Fetches from a durable consumer that returned messages", ["consumer"])
FETCHED = Counter("fairway_consumer_messages",
                  "Messages fetched from a durable consumer, redeliveries included", ["consumer"])


@dataclass(frozen=True)
class Delivery:
    """What a handler may know about the message beyond its payload."""

    msg_id: str  # Nats-Msg-Id of the publisher, or stream:sequence when absent
    subject: str
    delivered: int  # 1 on first delivery
    headers: dict[str, str]
    stream_sequence: int


@dataclass(frozen=True)
class Received[M: BaseModel]:
    """One message of a batch: its payload, its delivery, and its consumer span (parented to
    the publisher's context; a handler applies the message inside `item.current()`)."""

    payload: M
    delivery: Delivery
    span: trace.Span

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """While applying this message: its span is the current one (trace ids on log lines,
        trace context on events written) and its workload id is on every log line."""
        with trace.use_span(self.span, end_on_exit=False), workload_context(
                getattr(self.payload, "workload_id", None)):
            yield


type BatchHandler[M: BaseModel] = Callable[[list[Received[M]]], Awaitable[None]]


class FairwayBroker(NatsBroker):
    """A FastStream NATS broker that also runs Fairway's durable pull consumers.

    Core-NATS subscribers (request/reply, heartbeats) are FastStream's own. Durable work
    consumers run our pull loop (see `DurableConsumer`): FastStream's batch mode waits to fill
    a batch, and its non-batch mode handles a fetched batch concurrently without per-key order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durable_consumers: list[DurableConsumer] = []

    async def connect(self) -> Any:
        # every message on this connection fits the server's max payload (see limits)
        return bound_publishes(await super().connect())

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
        nats_servers(nats_url),
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
                 handler: Callable[[Any, Delivery], Awaitable[None]] | None,
                 fetch_timeout: float, batch_handler: BatchHandler | None = None,
                 batch_size: int | None = None, pause: float = 0.0):
        self.broker = broker
        self.spec = spec
        self.model = model
        self.handler = handler
        self.batch_handler = batch_handler
        self.batch_size = batch_size or max(1, spec.parallel) * 4
        self.fetch_timeout = fetch_timeout
        self.pause = pause
        self._task: asyncio.Task | None = None
        self._running = False
        self._handling = False
        self._slots = asyncio.Semaphore(max(1, spec.parallel))

    async def start(self, js) -> None:
        self._subscription = await js.pull_subscribe_bind(self.spec.durable, self.spec.stream)
        if not take_ready_messages(self._subscription):
            log.warning("nats-py's pull subscription has changed shape: fetches take each"
                        " message through a task of its own")
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
        batch = self.batch_size
        short = False
        fetches = FETCHES.labels(self.spec.durable)
        fetched = FETCHED.labels(self.spec.durable)
        while self._running:
            if short and self.pause:  # let the next batch gather what arrives meanwhile
                await asyncio.sleep(self.pause)
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
            short = len(messages) < batch
            fetches.inc()
            fetched.inc(len(messages))
            self._handling = True
            try:
                # shielded: a stop waits for the batch in hand rather than cutting it
                if self.batch_handler is not None:
                    try:
                        await asyncio.shield(self._handle_batch(messages))
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # never lose the loop to one batch (acks lost: redelivered)
                        log.exception("settling a batch of %s failed", self.spec.durable)
                    continue
                groups: dict[str, list[Msg]] = defaultdict(list)
                for raw in messages:
                    groups[self.spec.ordering_key(raw.subject)].append(raw)
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

    async def _handle_batch(self, messages: list[Msg]) -> None:
        """Every parsed message of a fetch to the batch handler at once; acked together when
        it returns. If it raises, each message again on its own (settled one by one)."""
        items: list[Received] = []
        raws: list[Msg] = []
        for raw in messages:
            delivery = _delivery(raw)
            try:
                payload = self.model.model_validate_json(raw.data)
            except ValidationError as exc:
                try:
                    await _dead_letter(self.broker, self.spec, delivery, raw.data,
                                       f"invalid payload: {exc}")
                    await raw.term()
                except Exception:
                    log.exception("dead-lettering a message of %s failed", self.spec.durable)
                continue
            span = consumer_span(
                _tracer, f"{self.spec.durable} handle", delivery.headers,
                lambda d=delivery, p=payload: {**self._span_attributes(d),
                                               "messaging.batch_size": len(messages),
                                               **workload_attributes(p)})
            items.append(Received(payload, delivery, span))
            raws.append(raw)
        if not items:
            return
        assert self.batch_handler is not None
        try:
            try:
                await self.batch_handler(items)
            except Exception as exc:
                if len(items) == 1:
                    await _settle_failure(self.broker, self.spec, raws[0], items[0].delivery,
                                          exc)
                    return
                log.warning("a batch of %d from %s failed, handling them one by one: %r",
                            len(items), self.spec.durable, exc)
                for item, raw in zip(items, raws, strict=True):
                    try:
                        await self._handle_alone(item, raw)
                    except Exception:  # never lose the loop to one message
                        log.exception("settling a message of %s failed", self.spec.durable)
                return
            for raw in raws:
                await raw.ack()
        finally:
            for item in items:
                item.span.end()

    async def _handle_alone(self, item: Received, raw: Msg) -> None:
        assert self.batch_handler is not None
        try:
            await self.batch_handler([item])
        except Exception as exc:
            item.span.record_exception(exc)
            await _settle_failure(self.broker, self.spec, raw, item.delivery, exc)
            return
        await raw.ack()

    async def _handle_one(self, raw: Msg) -> None:
        delivery = _delivery(raw)
        headers = delivery.headers
        span = consumer_span(_tracer, f"{self.spec.durable} handle", headers,
                             lambda: self._span_attributes(delivery))
        with trace.use_span(span, end_on_exit=True):
            await _handle(self.broker, self.spec, self.model, self.handler, raw, delivery)

    def _span_attributes(self, delivery: Delivery) -> dict[str, str | int]:
        return {"messaging.system": "nats", "messaging.destination": delivery.subject,
                "messaging.consumer": self.spec.durable,
                "messaging.delivery_count": delivery.delivered}


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


def durable_batch_subscriber[M: BaseModel](
    broker: NatsBroker,
    spec: ConsumerSpec,
    model: type[M],
    *,
    batch_size: int = 100,
    fetch_timeout: float = 5.0,
    pause: float = 0.0,
) -> Callable[[BatchHandler[M]], BatchHandler[M]]:
    """Register `handler(items)` on the durable consumer `spec`: each fetch's messages (up to
    `batch_size`, whatever is there) in one call, in stream order, acked once it returns.

    The handler applies them in order, in one transaction, and changes memory only after it
    commits: if it raises, nothing of the batch may remain, for each message is then handled
    again on its own (and naked or dead-lettered on its own). Idempotent per message, as
    every handler.

    `pause`: after a batch smaller than `batch_size`, wait that long (seconds) before the next
    fetch, so that batches fill: fewer transactions, for consumers whose figures may lag by
    that much (projections read later), never for one a workload waits on.
    """
    if not isinstance(broker, FairwayBroker):
        raise TypeError("durable consumers need the broker from fairway_bus.make_broker")

    def register(handler: BatchHandler[M]) -> BatchHandler[M]:
        broker.durable_consumers.append(DurableConsumer(
            broker, spec, model, None, fetch_timeout, batch_handler=handler,
            batch_size=batch_size, pause=pause))
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
    if spans_recorded():
        trace.get_current_span().set_attributes(workload_attributes(payload))
    try:
        await handler(payload, delivery)
    except Exception as exc:
        await _settle_failure(broker, spec, raw, delivery, exc)
        return
    await raw.ack()


def _delivery(raw: Msg) -> Delivery:
    stream, delivered, sequence = _reply_fields(raw)
    headers = dict(raw.headers or {})
    return Delivery(
        msg_id=headers.get("Nats-Msg-Id") or f"{stream}:{sequence}",
        subject=raw.subject,
        delivered=delivered,
        headers=headers,
        stream_sequence=sequence,
    )


def _reply_fields(raw: Msg) -> tuple[str, int, int]:
    """(stream, times delivered, stream sequence) from a JetStream message's reply subject:
    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…` (9 tokens), or with a domain and
    an account hash after `ACK` (11 or more). What the client's `metadata` reads, without its
    timestamp and frozen dataclasses: every message of every consumer reads it."""
    tokens = (raw.reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == 9:
            return tokens[2], int(tokens[4]), int(tokens[5])
        if len(tokens) >= 11:
            return (tokens[Msg.Ack.Stream], int(tokens[Msg.Ack.NumDelivered]),
                    int(tokens[Msg.Ack.StreamSeq]))
    meta = raw.metadata  # not a JetStream delivery: the client says so (raises)
    return meta.stream, meta.num_delivered, meta.sequence.stream


async def _settle_failure(broker: NatsBroker, spec: ConsumerSpec, raw: Msg, delivery: Delivery,
                          exc: Exception) -> None:
    """The handler raised: retry later with a growing delay, or on the last allowed delivery
    dead-letter the message and terminate it."""
    if delivery.delivered >= spec.max_deliver:
        log.error(
            "giving up on message after %d deliveries: %r", delivery.delivered, exc,
            exc_info=exc,
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
