"""The metrics service's message handlers: fold each event into the workload's projection in
one transaction (with the inbox, so a redelivery changes nothing), then record the series."""

from dataclasses import dataclass

from fairway_bus import Delivery, durable_subscriber
from fairway_contracts import streams
from fairway_contracts.events import PhaseChanged, WorkloadSubmitted
from fairway_contracts.streams import ConsumerSpec
from fairway_metrics import domain, repository, series
from fairway_runtime import Service
from fairway_store import first_delivery
from fairway_telemetry import workload_context


@dataclass(frozen=True)
class MetricsConsumers:
    """The durable consumers the metrics service reads; tests substitute their own."""

    workloads: ConsumerSpec = streams.METRICS_WORKLOADS
    phases: ConsumerSpec = streams.METRICS_PHASES


def register(service: Service, consumers: MetricsConsumers) -> None:
    @durable_subscriber(service.broker, consumers.workloads, WorkloadSubmitted)
    async def on_workload_submitted(event: WorkloadSubmitted, delivery: Delivery) -> None:
        await workload_submitted(service, event, delivery, consumers.workloads.durable)

    @durable_subscriber(service.broker, consumers.phases, PhaseChanged)
    async def on_phase_changed(event: PhaseChanged, delivery: Delivery) -> None:
        await phase_changed(service, event, delivery, consumers.phases.durable)

    service.on_start(rebuild_series)


async def rebuild_series(service: Service) -> None:
    """The current-phase gauge, from the projections: before the first event is consumed."""
    async with service.pool.acquire() as conn:
        series.reset_workload_counts(await repository.count_by_phase_and_type(conn))


async def workload_submitted(service: Service, event: WorkloadSubmitted, delivery: Delivery,
                             consumer: str) -> None:
    with workload_context(event.workload_id):
        async with service.pool.acquire() as conn, conn.transaction():
            if not await first_delivery(conn, consumer, delivery.msg_id):
                return
            view = await repository.lock_workload(conn, event.workload_id, event.project,
                                                  event.workload_type.value)
            outcome = domain.on_submitted(view, event)
            await repository.save_workload(conn, outcome.view)
        series.record(outcome)  # after the commit: a rolled-back event records nothing


async def phase_changed(service: Service, event: PhaseChanged, delivery: Delivery,
                        consumer: str) -> None:
    with workload_context(event.workload_id):
        async with service.pool.acquire() as conn, conn.transaction():
            if not await first_delivery(conn, consumer, delivery.msg_id):
                return
            view = await repository.lock_workload(conn, event.workload_id, event.project,
                                                  event.workload_type.value)
            outcome = domain.on_phase_changed(view, event)
            await repository.save_workload(conn, outcome.view)
        series.record(outcome)
