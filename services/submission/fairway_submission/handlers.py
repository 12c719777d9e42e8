"""Submission's message handlers: phase and pod-group events keep the workload view current; the
scheduler's pending reasons and queue status feed the API's explanations and each unit's
status; the other services' heartbeats feed /healthz."""

from fairway_bus import Delivery, Received, durable_batch_subscriber, durable_subscriber
from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    Heartbeat,
    PhaseChanged,
    PhasesApplied,
    PodGroupChanged,
    QueueStatusChanged,
    SchedulingCycle,
    SchedulingPending,
    ServingChanged,
    ThirdPartyWorkloadChanged,
)
from fairway_submission import repository as repo
from fairway_submission.core.health import HEALTH_SUBJECT
from fairway_submission.service import SubmissionService
from fairway_telemetry import workload_context


def register(service: SubmissionService) -> None:
    broker = service.runtime.broker

    # The two busiest consumers (every transition, every pod change) apply what each fetch
    # brought in one statement, pausing after a short fetch so the next gathers more (nothing
    # waits on the view but people reading it).
    pause = service.settings.view_pause_seconds

    @durable_batch_subscriber(broker, streams.SUBMISSION_PHASES, PhaseChanged, pause=pause)
    async def on_phases(items: list[Received[PhaseChanged]]) -> None:
        # Idempotent by (workload, sequence): a redelivered transition changes nothing, and an
        # older one arriving late never overwrites a newer phase. One statement: all or none.
        events = [item.payload for item in items]
        async with service.pool.acquire() as conn:
            await repo.apply_phases(conn, events)
        # Committed: the console's browsers may now read what they are told of, on every
        # replica (this one hears its own announcement too).
        await service.announce_applied(events)

    @broker.subscriber(subjects.VIEW_PHASES_APPLIED, no_reply=True, include_in_schema=False)
    async def on_phases_applied(applied: PhasesApplied) -> None:
        service.phase_feed.publish(applied.changes)

    @durable_batch_subscriber(broker, streams.SUBMISSION_PODGROUPS, PodGroupChanged,
                              pause=pause)
    async def on_pod_groups(items: list[Received[PodGroupChanged]]) -> None:
        # Pods change between phase changes (an evicted pod leaves after its workload went
        # Pending): the view follows; an older event never overwrites a newer list. One
        # statement: all or none (none at all when each came with its phase event).
        to_write = repo.pod_groups_to_write([item.payload for item in items])
        if to_write:
            async with service.pool.acquire() as conn:
                await repo.apply_pod_groups(conn, to_write)

    # Busy while workloads queue (about two a workload: waiting, then placed): one statement
    # a fetch, without a pause (the API explains a wait with it).
    @durable_batch_subscriber(broker, streams.SUBMISSION_PENDING, SchedulingPending)
    async def on_pending(items: list[Received[SchedulingPending]]) -> None:
        async with service.pool.acquire() as conn:
            await repo.apply_pendings(conn, [item.payload for item in items])

    @durable_subscriber(broker, streams.SUBMISSION_SERVING, ServingChanged)
    async def on_serving(event: ServingChanged, delivery: Delivery) -> None:
        # An inference server's endpoint and replicas, as lifecycle's autoscaler reports them.
        with workload_context(event.workload_id):
            async with service.pool.acquire() as conn:
                await repo.apply_serving(conn, event)

    @durable_subscriber(broker, streams.SUBMISSION_THIRDPARTY, ThirdPartyWorkloadChanged)
    async def on_third_party(event: ThirdPartyWorkloadChanged, delivery: Delivery) -> None:
        # A workload Fairway schedules but did not create, as lifecycle grouped it.
        with workload_context(event.workload_id):
            await service.third_party_changed(event)

    @durable_subscriber(broker, streams.SUBMISSION_QUEUES, QueueStatusChanged)
    async def on_queue_status(event: QueueStatusChanged, delivery: Delivery) -> None:
        async with service.pool.acquire() as conn:
            await repo.apply_queue_status(conn, event)

    # A policy was saved or deleted (through any replica of the API): policy's remembered
    # answers may no longer hold.
    @broker.subscriber(subjects.POLICY_CHANGED, no_reply=True, include_in_schema=False)
    async def on_policy_changed() -> None:
        service.evaluations.forget()

    # Every replica hears every cycle (core NATS, no queue group): the console's overview.
    @broker.subscriber(subjects.SCHEDULER_CYCLE, no_reply=True, include_in_schema=False)
    async def on_scheduling_cycle(cycle: SchedulingCycle) -> None:
        service.last_cycle = cycle

    @broker.subscriber(HEALTH_SUBJECT, no_reply=True, include_in_schema=False)
    async def on_heartbeat(beat: Heartbeat) -> None:
        service.heartbeats.record(beat)
