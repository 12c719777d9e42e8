"""Lifecycle's message handlers: thin, each hands its message to `LifecycleService`."""

from fairway_bus import Delivery, Received, durable_batch_subscriber, durable_subscriber
from fairway_contracts import streams
from fairway_contracts.events import (
    BindDecision,
    DeadLetter,
    DepartmentChanged,
    NodePoolChanged,
    PreemptDecision,
    ProjectChanged,
    SchedulingPending,
    WorkloadAction,
    WorkloadSubmitted,
)
from fairway_lifecycle.service import LifecycleService, Submission
from fairway_telemetry import inject_headers, trace_headers_only, workload_context


def register(service: LifecycleService) -> None:
    broker = service.runtime.broker

    # Busy (every workload): a fetch's submissions in one statement.
    @durable_batch_subscriber(broker, streams.LIFECYCLE_WORKLOADS, WorkloadSubmitted)
    async def on_submitted(items: list[Received[WorkloadSubmitted]]) -> None:
        submissions = []
        for item in items:
            if item.payload.third_party:
                continue  # its owner made its pods: they are bound, never made (thirdparty.py)
            with item.current():  # its Creating event carries on from its consumer span
                submissions.append(Submission(item.payload,
                                              trace_headers_only(item.delivery.headers),
                                              inject_headers()))
        await service.submit_many(submissions)

    @durable_subscriber(broker, streams.LIFECYCLE_ACTIONS, WorkloadAction)
    async def on_action(action: WorkloadAction, delivery: Delivery) -> None:
        with workload_context(action.workload_id):
            await service.act(action)

    @durable_subscriber(broker, streams.LIFECYCLE_PREEMPTIONS, PreemptDecision)
    async def on_preempt(decision: PreemptDecision, delivery: Delivery) -> None:
        with workload_context(decision.workload_id):
            await service.preempt(decision)

    @durable_subscriber(broker, streams.LIFECYCLE_PENDING, SchedulingPending)
    async def on_pending(event: SchedulingPending, delivery: Delivery) -> None:
        with workload_context(event.workload_id):
            await service.pending(event)

    @durable_subscriber(broker, streams.LIFECYCLE_PROJECTS, ProjectChanged)
    async def on_project(event: ProjectChanged, delivery: Delivery) -> None:
        await service.org_unit(event)

    @durable_subscriber(broker, streams.LIFECYCLE_DEPARTMENTS, DepartmentChanged)
    async def on_department(event: DepartmentChanged, delivery: Delivery) -> None:
        await service.org_unit(event)

    @durable_subscriber(broker, streams.LIFECYCLE_NODEPOOLS, NodePoolChanged)
    async def on_node_pool(event: NodePoolChanged, delivery: Delivery) -> None:
        await service.node_pool(event)

    @durable_subscriber(broker, streams.LIFECYCLE_DECISIONS, BindDecision)
    async def on_bind(decision: BindDecision, delivery: Delivery) -> None:
        with workload_context(decision.workload_id):
            await service.bind(decision)

    @durable_subscriber(broker, streams.LIFECYCLE_DEADLETTERS, DeadLetter)
    async def on_dead_letter(letter: DeadLetter, delivery: Delivery) -> None:
        await service.dead_letter(letter)
