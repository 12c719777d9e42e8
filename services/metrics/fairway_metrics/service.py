"""`MetricsService`, the object that runs the metrics service: it keeps the projection of every
event (in the projection tables and, after each commit, in memory), stores samples on a timer and
answers the telemetry and time-series queries.

Each fetched batch of events is folded into the projection tables in one transaction (a
workload's events with the inbox, so a redelivery changes nothing; last-value facts guarded by
stream sequence), and applied to the in-memory projection only after the commit.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError

from fairway_bus import Received
from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    DeadLetter,
    PhaseChanged,
    PreemptDecision,
    SchedulingPending,
    ServingChanged,
    ThirdPartyWorkloadChanged,
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
from fairway_metrics import repository, series
from fairway_metrics.core import queries
from fairway_metrics.core.projection import PENDING, SERVING, UTILIZATION, Projection, newest
from fairway_metrics.core.workloads import (
    Outcome,
    WorkloadView,
    fold_batch,
    on_phase_changed,
    on_submitted,
    on_third_party,
    type_of,
)
from fairway_metrics.settings import MetricsSettings
from fairway_runtime import Service
from fairway_store import first_deliveries

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
    serving: ConsumerSpec = streams.METRICS_SERVING
    dead_letters: ConsumerSpec = streams.METRICS_DEADLETTERS
    thirdparty: ConsumerSpec = streams.METRICS_THIRDPARTY

    def all(self) -> tuple[ConsumerSpec, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class QuerySubjects:
    """Where the queries are answered; tests substitute their own."""

    telemetry: str = subjects.METRICS_QUERY_TELEMETRY
    series: str = subjects.METRICS_QUERY_SERIES


class MetricsService:
    """The projection and what keeps it, samples it and reads it."""

    def __init__(self, runtime: Service, settings: MetricsSettings, *,
                 consumers: MetricsConsumers | None = None,
                 query_subjects: QuerySubjects | None = None):
        self.runtime = runtime
        self.settings = settings
        self.consumers = consumers or MetricsConsumers()
        self.query_subjects = query_subjects or QuerySubjects()
        self.projection = Projection()

    # workloads -----------------------------------------------------------------------------
    # Submissions and transitions come in bursts (thousands a minute): each fetch is applied
    # in one transaction of a few set-based statements, the events folded per workload in
    # memory first (in stream order) so each workload is read and written once; the
    # projection and series follow after the commit (a rolled-back batch records nothing).
    async def workloads_submitted(self, items: list[Received[WorkloadSubmitted]]) -> None:
        await self._apply(items, self.consumers.workloads.durable, on_submitted)

    async def phases_changed(self, items: list[Received[PhaseChanged]]) -> None:
        await self._apply(items, self.consumers.phases.durable, on_phase_changed)

    async def third_party_changed(self, items: list[Received[ThirdPartyWorkloadChanged]]
                                  ) -> None:
        """Third-party workloads' phases, from lifecycle's announcements (lifecycle publishes
        no PhaseChanged for them); one of no project is not counted until it has one."""
        await self._apply([i for i in items if i.payload.project],
                          self.consumers.thirdparty.durable, on_third_party)

    async def _apply[E: (WorkloadSubmitted, PhaseChanged, ThirdPartyWorkloadChanged)](
            self, items: list[Received[E]], consumer: str,
            fold: Callable[[WorkloadView, E], Outcome]) -> None:
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            fresh = await first_deliveries(conn, consumer,
                                           [item.delivery.msg_id for item in items])
            events: list[E] = []
            for item in items:  # a redelivery changes nothing; a repeated id counts once
                if item.delivery.msg_id in fresh:
                    fresh.discard(item.delivery.msg_id)
                    events.append(item.payload)
            if not events:
                return
            # rows for the workloads not yet in memory (those in it are committed, their rows
            # exist), each named by its first event
            first = {}
            for event in events:
                if event.workload_id not in self.projection.workloads:
                    first.setdefault(event.workload_id, (event.workload_id, event.project,
                                                         type_of(event)))
            views = await repository.add_workloads(conn, first.values())
            views |= await repository.lock_workloads(
                conn, {e.workload_id for e in events} - views.keys())
            folded = fold_batch(views, events, fold)
            await repository.save_workloads(conn, folded.views.values())
            if folded.finished:  # nothing waits or runs: forget why, how busy
                await repository.forget_current(conn, (PENDING, UTILIZATION, SERVING),
                                                folded.finished)
        self.projection.workloads.update(folded.views)
        for wid in folded.finished:
            for kind in (PENDING, UTILIZATION, SERVING):
                self.projection.put(kind, wid, None)
        series.record(folded.outcomes)

    # last-value facts ----------------------------------------------------------------------
    # Queue status, nodes, the organisation, why workloads wait, how busy they are: each fetch
    # is kept in one statement, the newest message of each key only (stream sequence decides,
    # so a redelivered or older message never overwrites a newer one).
    async def remember[M: BaseModel](self, kind: str, key: Callable[[M], str],
                                     items: list[Received[M]]) -> None:
        values = newest((key(item.payload), item.delivery.stream_sequence, item.payload)
                        for item in items)
        if not values:
            return
        async with self.runtime.pool.acquire() as conn:
            kept = await repository.put_current(conn, kind, {
                k: (sequence, event.model_dump_json(by_alias=True))
                for k, (sequence, event) in values.items()})
        for k in kept:
            self.projection.put(kind, k, values[k][1])

    async def about_workloads(self, kind: str,
                              items: list[Received[SchedulingPending]]
                              | list[Received[WorkloadUtilization]]
                              | list[Received[ServingChanged]]) -> None:
        """Why workloads wait, or how busy they are: kept while the workload is live (a message
        that arrives after it finished would otherwise be kept for ever)."""
        workloads = self.projection.workloads
        live = [item for item in items
                if (view := workloads.get(item.payload.workload_id)) is None
                or not view.finished]
        await self.remember(kind, _workload_id, live)

    async def preempted(self, event: PreemptDecision) -> None:
        async with self.runtime.pool.acquire() as conn:
            counted = await repository.add_preemption(conn, event.decision_id,
                                                      event.workload_id, event.project,
                                                      event.reason, event.decided_at)
        if counted:
            self.projection.preemptions[(event.project, event.reason)] += 1

    async def dead_lettered(self, event: DeadLetter) -> None:
        async with self.runtime.pool.acquire() as conn:
            counted = await repository.add_dead_letter(conn, event.consumer, event.stream,
                                                       event.stream_sequence, event.failed_at)
        if counted:
            self.projection.dead_letters[event.consumer] += 1

    # start, samples, queries ---------------------------------------------------------------
    async def start(self, runtime: Service) -> None:
        """The projection from the tables, before the first event is consumed; then the
        Prometheus collector reads it and samples are taken on a timer."""
        async with runtime.pool.acquire() as conn:
            loaded = await repository.load(conn)
        self._take(loaded)
        series.COLLECTOR.projection = self.projection
        runtime.background(self._sample_loop(), "samples")
        if self.settings.refresh_seconds > 0:
            runtime.background(self._refresh_loop(), "projection-refresh")

    def _take(self, loaded: Projection) -> None:
        self.projection.workloads = loaded.workloads
        self.projection.current = loaded.current
        self.projection.preemptions = loaded.preemptions
        self.projection.dead_letters = loaded.dead_letters

    async def refresh(self) -> None:
        """The projection as the tables hold it now: what every replica applied."""
        async with (self.runtime.pool.acquire() as conn,
                    conn.transaction(isolation="repeatable_read", readonly=True)):
            loaded = await repository.load(conn)  # one snapshot of every table
        self._take(loaded)

    async def _refresh_loop(self) -> None:
        """Replicas: the projection read from the tables again and again (in one read
        transaction per refresh, swapped in whole), so every replica serves the same
        figures whichever of them applied an event. Only what is counted as it happens
        (transitions, latencies: series.record) stays per replica: each event is counted by
        exactly one, and a sum over the replicas is the total."""
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the database may be away: the next refresh
                log.warning("reading the projection from the tables failed", exc_info=True)

    async def take_samples(self) -> int:
        now = utcnow()
        if self.settings.refresh_seconds > 0:
            # Replicas sample the same tables: at the same instant, the start of the
            # interval, so the table keeps one sample per instant (the others conflict).
            interval = self.settings.sample_interval_seconds
            now = datetime.fromtimestamp(now.timestamp() // interval * interval, tz=UTC)
        rows = queries.samples(self.projection.snapshot(now))
        cutoff = now - timedelta(hours=self.settings.sample_retention_hours)
        async with self.runtime.pool.acquire() as conn, conn.transaction():
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
        """A telemetry query answered from the projection (a malformed one with its error)."""
        try:
            query = TelemetryQuery.model_validate_json(data)
        except ValidationError as exc:
            return TelemetryReply(type=TelemetryType.WORKLOADS_COUNT, timestamp=utcnow(),
                                  error=_query_error(exc))
        return queries.telemetry(query, self.projection.snapshot(utcnow()))

    async def answer_series(self, data: bytes) -> MetricsReply:
        """A time-series query answered from the stored samples (a malformed one with its
        error)."""
        try:
            query = MetricsQuery.model_validate_json(data)
        except ValidationError as exc:
            return MetricsReply(error=_query_error(exc))
        if query.end <= query.start:
            return MetricsReply(error=QueryError(field="end", message="must be after start"))
        async with self.runtime.pool.acquire() as conn:
            rows = await repository.read_samples(
                conn, query.scope, query.scope_id, [m.value for m in query.metric_types],
                query.start, query.end)
        label = {"project": "projectId", "department": "departmentId",
                 "nodepool": "nodepoolName"}[query.scope]
        measurements = queries.downsample(query, rows, {label: query.scope_id})
        return MetricsReply(measurements=measurements)


def _workload_id(event: SchedulingPending | WorkloadUtilization | ServingChanged) -> str:
    return event.workload_id


def _query_error(exc: ValidationError) -> QueryError:
    first = exc.errors(include_url=False)[0]
    return QueryError(field=".".join(str(p) for p in first["loc"]) or "query",
                      message=first["msg"])
