"""The metrics service's message handlers.

Each event is folded into the projection tables in one transaction (a workload's events with
the inbox, so a redelivery changes nothing; last-value facts guarded by stream sequence), and
applied to the in-memory projection only after the commit. Telemetry queries are answered over
core-NATS request/reply in a queue group; samples are stored on a timer.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from faststream.nats import NatsMessage
from pydantic import BaseModel, ValidationError

from fairway_bus import Delivery, Received, durable_batch_subscriber, durable_subscriber
from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    DeadLetter,
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    PhaseChanged,
    PreemptDecision,
    ProjectChanged,
    QueueStatusChanged,
    SchedulingPending,
    WorkloadSubmitted,
    WorkloadUtilization,
)
from fairway_contracts.streams import ConsumerSpec
from fairway_contracts.telemetry import (
    MetricsQuery,
    MetricsReply,
    QueryError,
    TelemetryQuery,
    TelemetryReply,
    TelemetryType,
)
from fairway_contracts.workloads import utcnow
from fairway_metrics import domain, queries, repository, series
from fairway_metrics.projection import (
    DEPARTMENT,
    NODE,
    NODEPOOL,
    PENDING,
    PROJECT,
    QUEUE,
    UTILIZATION,
    Projection,
    queue_key,
)
from fairway_metrics.settings import MetricsSettings
from fairway_runtime import Service
from fairway_store import first_delivery

log = logging.getLogger("fairway.metrics")


@dataclass(frozen=True)
class MetricsConsumers:
    """The durable consumers the metrics service reads; tests substitute their own."""

    workloads: ConsumerSpec = streams.METRICS_WORKLOADS
    phases: ConsumerSpec = streams.METRICS_PHASES
    queues: ConsumerSpec = streams.METRICS_QUEUES
    pending: ConsumerSpec = streams.METRICS_PENDING
    preemptions: ConsumerSpec = streams.METRICS_PREEMPTIONS
    inventory: ConsumerSpec = streams.METRICS_INVENTORY
    projects: ConsumerSpec = streams.METRICS_PROJECTS
    departments: ConsumerSpec = streams.METRICS_DEPARTMENTS
    node_pools: ConsumerSpec = streams.METRICS_NODEPOOLS
    utilization: ConsumerSpec = streams.METRICS_UTILIZATION
    dead_letters: ConsumerSpec = streams.METRICS_DEADLETTERS

    def all(self) -> tuple[ConsumerSpec, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class QuerySubjects:
    telemetry: str = subjects.METRICS_QUERY_TELEMETRY
    series: str = subjects.METRICS_QUERY_SERIES


class Metrics:
    """The projection and the handlers that keep it."""

    def __init__(self, service: Service, settings: MetricsSettings):
        self.service = service
        self.settings = settings
        self.projection = Projection()

    # workloads -----------------------------------------------------------------------------
    # Submissions and transitions come in bursts (thousands a minute): each fetch is applied
    # in one transaction, message by message in stream order, and the projection and series
    # follow after the commit (a rolled-back batch records nothing).
    async def workloads_submitted(self, items: list[Received[WorkloadSubmitted]],
                                  consumer: str) -> None:
        await self._apply(items, consumer, domain.on_submitted)

    async def phases_changed(self, items: list[Received[PhaseChanged]], consumer: str) -> None:
        await self._apply(items, consumer, domain.on_phase_changed)

    async def _apply(self, items: list[Received[Any]], consumer: str,
                     fold: Callable[[Any, Any], domain.Outcome]) -> None:
        outcomes: list[domain.Outcome] = []
        async with self.service.pool.acquire() as conn, conn.transaction():
            for item in items:
                event = item.payload
                with item.current():
                    if not await first_delivery(conn, consumer, item.delivery.msg_id):
                        continue
                    view = await repository.lock_workload(conn, event.workload_id,
                                                          event.project,
                                                          event.workload_type.value)
                    outcome = fold(view, event)
                    await repository.save_workload(conn, outcome.view)
                    if outcome.view.finished:  # nothing waits or runs: forget why, how busy
                        for kind in (PENDING, UTILIZATION):
                            await repository.forget_current(conn, kind, event.workload_id)
                outcomes.append(outcome)
        for outcome in outcomes:
            wid = outcome.view.id
            self.projection.workloads[wid] = outcome.view
            if outcome.view.finished:
                for kind in (PENDING, UTILIZATION):
                    self.projection.put(kind, wid, None)
            series.record(outcome)

    # last-value facts ----------------------------------------------------------------------
    async def remember(self, kind: str, key: str, event: BaseModel, delivery: Delivery) -> None:
        payload = event.model_dump(mode="json", by_alias=True)
        async with self.service.pool.acquire() as conn:
            newer = await repository.put_current(conn, kind, key, delivery.stream_sequence,
                                                 payload)
        if newer:
            self.projection.put(kind, key, event)

    async def about_workload(self, kind: str, event: SchedulingPending | WorkloadUtilization,
                             delivery: Delivery) -> None:
        """Why a workload waits, or how busy it is: kept while the workload is live (a message
        that arrives after it finished would otherwise be kept for ever)."""
        view = self.projection.workloads.get(event.workload_id)
        if view is not None and view.finished:
            return
        await self.remember(kind, event.workload_id, event, delivery)

    async def preempted(self, event: PreemptDecision) -> None:
        async with self.service.pool.acquire() as conn:
            counted = await repository.add_preemption(conn, event.decision_id,
                                                      event.workload_id, event.project,
                                                      event.reason, event.decided_at)
        if counted:
            self.projection.preemptions[(event.project, event.reason)] += 1

    async def dead_lettered(self, event: DeadLetter) -> None:
        async with self.service.pool.acquire() as conn:
            counted = await repository.add_dead_letter(conn, event.consumer, event.stream,
                                                       event.stream_sequence, event.failed_at)
        if counted:
            self.projection.dead_letters[event.consumer] += 1

    # start, samples, queries ---------------------------------------------------------------
    async def load(self, service: Service) -> None:
        """The projection from the tables, before the first event is consumed."""
        async with service.pool.acquire() as conn:
            loaded = await repository.load(conn)
        self.projection.workloads = loaded.workloads
        self.projection.current = loaded.current
        self.projection.preemptions = loaded.preemptions
        self.projection.dead_letters = loaded.dead_letters
        series.COLLECTOR.projection = self.projection
        service.background(self._sample_loop(), "samples")

    async def take_samples(self) -> int:
        now = utcnow()
        rows = queries.samples(self.projection.snapshot(now))
        cutoff = now - timedelta(hours=self.settings.sample_retention_hours)
        async with self.service.pool.acquire() as conn, conn.transaction():
            await repository.add_samples(conn, now, rows)
            await repository.drop_samples_before(conn, cutoff)
        return len(rows)

    async def _sample_loop(self) -> None:
        while True:
            try:
                await self.take_samples()
            except Exception:  # the database may be away for a while: try at the next tick
                log.warning("storing samples failed", exc_info=True)
            await asyncio.sleep(self.settings.sample_interval_seconds)

    def answer_telemetry(self, data: bytes) -> TelemetryReply:
        try:
            query = TelemetryQuery.model_validate_json(data)
        except ValidationError as exc:
            return TelemetryReply(type=TelemetryType.WORKLOADS_COUNT, timestamp=utcnow(),
                                  error=_query_error(exc))
        return queries.telemetry(query, self.projection.snapshot(utcnow()))

    async def answer_series(self, data: bytes) -> MetricsReply:
        try:
            query = MetricsQuery.model_validate_json(data)
        except ValidationError as exc:
            return MetricsReply(error=_query_error(exc))
        if query.end <= query.start:
            return MetricsReply(error=QueryError(field="end", message="must be after start"))
        async with self.service.pool.acquire() as conn:
            rows = await repository.read_samples(
                conn, query.scope, query.scope_id, [m.value for m in query.metric_types],
                query.start, query.end)
        label = {"project": "projectId", "department": "departmentId",
                 "nodepool": "nodepoolName"}[query.scope]
        measurements = queries.downsample(
            query, [(r["metric"], r["at"], r["value"]) for r in rows], {label: query.scope_id})
        return MetricsReply(measurements=measurements)


def _query_error(exc: ValidationError) -> QueryError:
    first = exc.errors(include_url=False)[0]
    return QueryError(field=".".join(str(p) for p in first["loc"]) or "query",
                      message=first["msg"])


def register(service: Service, settings: MetricsSettings, consumers: MetricsConsumers,
             query_subjects: QuerySubjects) -> Metrics:
    m = Metrics(service, settings)
    broker = service.broker

    @durable_batch_subscriber(broker, consumers.workloads, WorkloadSubmitted)
    async def on_workloads_submitted(items: list[Received[WorkloadSubmitted]]) -> None:
        await m.workloads_submitted(items, consumers.workloads.durable)

    @durable_batch_subscriber(broker, consumers.phases, PhaseChanged)
    async def on_phases_changed(items: list[Received[PhaseChanged]]) -> None:
        await m.phases_changed(items, consumers.phases.durable)

    @durable_subscriber(broker, consumers.queues, QueueStatusChanged)
    async def on_queue_status(event: QueueStatusChanged, delivery: Delivery) -> None:
        await m.remember(QUEUE, queue_key(event), event, delivery)

    @durable_subscriber(broker, consumers.pending, SchedulingPending)
    async def on_pending(event: SchedulingPending, delivery: Delivery) -> None:
        await m.about_workload(PENDING, event, delivery)

    @durable_subscriber(broker, consumers.preemptions, PreemptDecision)
    async def on_preempt(event: PreemptDecision, delivery: Delivery) -> None:
        await m.preempted(event)

    @durable_subscriber(broker, consumers.inventory, NodeInventory)
    async def on_node(event: NodeInventory, delivery: Delivery) -> None:
        await m.remember(NODE, event.name, event, delivery)

    @durable_subscriber(broker, consumers.projects, ProjectChanged)
    async def on_project(event: ProjectChanged, delivery: Delivery) -> None:
        await m.remember(PROJECT, event.project_id, event, delivery)

    @durable_subscriber(broker, consumers.departments, DepartmentChanged)
    async def on_department(event: DepartmentChanged, delivery: Delivery) -> None:
        await m.remember(DEPARTMENT, event.department_id, event, delivery)

    @durable_subscriber(broker, consumers.node_pools, NodePoolChanged)
    async def on_node_pool(event: NodePoolChanged, delivery: Delivery) -> None:
        await m.remember(NODEPOOL, event.name, event, delivery)

    @durable_subscriber(broker, consumers.utilization, WorkloadUtilization)
    async def on_utilization(event: WorkloadUtilization, delivery: Delivery) -> None:
        await m.about_workload(UTILIZATION, event, delivery)

    @durable_subscriber(broker, consumers.dead_letters, DeadLetter)
    async def on_dead_letter(event: DeadLetter, delivery: Delivery) -> None:
        await m.dead_lettered(event)

    # Queries: core NATS in a queue group (one instance answers; an unanswered request times
    # out for the caller, there is nothing to redeliver).
    @broker.subscriber(query_subjects.telemetry, queue=settings.query_queue_group,
                       title="metrics-telemetry", description="Current workload telemetry.")
    async def telemetry_request(body: Any, msg: NatsMessage) -> bytes:
        return m.answer_telemetry(msg.raw_message.data).to_json()

    @broker.subscriber(query_subjects.series, queue=settings.query_queue_group,
                       title="metrics-series",
                       description="Stored samples of a project, department or node pool.")
    async def series_request(body: Any, msg: NatsMessage) -> bytes:
        return (await m.answer_series(msg.raw_message.data)).to_json()

    service.on_start(m.load)
    return m
