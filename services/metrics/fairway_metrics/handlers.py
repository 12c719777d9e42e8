"""The metrics service's message handlers: each durable consumer's events handed to
`MetricsService`, and the telemetry and time-series queries answered over core-NATS
request/reply in a queue group (one instance answers; an unanswered request times out for the
caller, there is nothing to redeliver)."""

from typing import Any

from faststream.nats import NatsMessage

from fairway_bus import Delivery, Received, durable_batch_subscriber, durable_subscriber
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
    ServingChanged,
    ThirdPartyWorkloadChanged,
    WorkloadSubmitted,
    WorkloadUtilization,
)
from fairway_metrics.core.projection import (
    DEPARTMENT,
    NODE,
    NODEPOOL,
    PENDING,
    PROJECT,
    QUEUE,
    SERVING,
    UTILIZATION,
    queue_key,
)
from fairway_metrics.service import MetricsService


def register(service: MetricsService) -> None:
    """Subscribe the service's consumers and query subjects; load the projection at start."""
    _register_workloads(service)
    _register_facts(service)
    _register_queries(service)
    service.runtime.on_start(service.start)


def _register_workloads(service: MetricsService) -> None:
    broker, consumers = service.runtime.broker, service.consumers
    pause = service.settings.batch_pause_seconds

    @durable_batch_subscriber(broker, consumers.workloads, WorkloadSubmitted, pause=pause)
    async def on_workloads_submitted(items: list[Received[WorkloadSubmitted]]) -> None:
        await service.workloads_submitted(items)

    @durable_batch_subscriber(broker, consumers.phases, PhaseChanged, pause=pause)
    async def on_phases_changed(items: list[Received[PhaseChanged]]) -> None:
        await service.phases_changed(items)

    @durable_batch_subscriber(broker, consumers.thirdparty, ThirdPartyWorkloadChanged,
                              pause=pause)
    async def on_third_party(items: list[Received[ThirdPartyWorkloadChanged]]) -> None:
        await service.third_party_changed(items)


def _register_facts(service: MetricsService) -> None:
    """Last-value facts (queues, nodes, organisation, why a workload waits, how busy it is),
    each fetch kept at once; and the counted ones (preemptions, dead letters), rare enough to
    take one by one."""
    broker, consumers = service.runtime.broker, service.consumers
    pause = service.settings.batch_pause_seconds

    @durable_batch_subscriber(broker, consumers.queues, QueueStatusChanged, pause=pause)
    async def on_queue_status(items: list[Received[QueueStatusChanged]]) -> None:
        await service.remember(QUEUE, queue_key, items)

    @durable_batch_subscriber(broker, consumers.pending, SchedulingPending, pause=pause)
    async def on_pending(items: list[Received[SchedulingPending]]) -> None:
        await service.about_workloads(PENDING, items)

    @durable_subscriber(broker, consumers.preemptions, PreemptDecision)
    async def on_preempt(event: PreemptDecision, delivery: Delivery) -> None:
        await service.preempted(event)

    @durable_batch_subscriber(broker, consumers.inventory, NodeInventory, pause=pause)
    async def on_node(items: list[Received[NodeInventory]]) -> None:
        await service.remember(NODE, _name, items)

    @durable_batch_subscriber(broker, consumers.projects, ProjectChanged, pause=pause)
    async def on_project(items: list[Received[ProjectChanged]]) -> None:
        await service.remember(PROJECT, _project_id, items)

    @durable_batch_subscriber(broker, consumers.departments, DepartmentChanged, pause=pause)
    async def on_department(items: list[Received[DepartmentChanged]]) -> None:
        await service.remember(DEPARTMENT, _department_id, items)

    @durable_batch_subscriber(broker, consumers.node_pools, NodePoolChanged, pause=pause)
    async def on_node_pool(items: list[Received[NodePoolChanged]]) -> None:
        await service.remember(NODEPOOL, _name, items)

    @durable_batch_subscriber(broker, consumers.utilization, WorkloadUtilization, pause=pause)
    async def on_utilization(items: list[Received[WorkloadUtilization]]) -> None:
        await service.about_workloads(UTILIZATION, items)

    @durable_batch_subscriber(broker, consumers.serving, ServingChanged, pause=pause)
    async def on_serving(items: list[Received[ServingChanged]]) -> None:
        await service.about_workloads(SERVING, items)

    @durable_subscriber(broker, consumers.dead_letters, DeadLetter)
    async def on_dead_letter(event: DeadLetter, delivery: Delivery) -> None:
        await service.dead_lettered(event)


def _name(event: NodeInventory | NodePoolChanged) -> str:
    return event.name


def _project_id(event: ProjectChanged) -> str:
    return event.project_id


def _department_id(event: DepartmentChanged) -> str:
    return event.department_id


def _register_queries(service: MetricsService) -> None:
    broker, group = service.runtime.broker, service.settings.query_queue_group

    @broker.subscriber(service.query_subjects.telemetry, queue=group,
                       title="metrics-telemetry", description="Current workload telemetry.")
    async def telemetry_request(body: Any, msg: NatsMessage) -> bytes:
        return service.answer_telemetry(msg.raw_message.data).to_json()

    @broker.subscriber(service.query_subjects.series, queue=group, title="metrics-series",
                       description="Stored samples of a project, department or node pool.")
    async def series_request(body: Any, msg: NatsMessage) -> bytes:
        return (await service.answer_series(msg.raw_message.data)).to_json()
