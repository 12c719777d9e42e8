"""Lifecycle's message handlers: thin, each hands its message to `LifecycleService`.

With shards (several replicas, see shards.py) a work message about a workload goes to the
replica holding the workload's shard: handled here when this replica holds it, else handed
on (`ShardRouter.hand_on`) and acknowledged. A shard lost while its message was handled here
(the handling is idempotent, its effects are in the database) is handed on as well, so the new
holder does it again rather than nobody. Organisation and node-pool changes concern every
replica: the one that receives one records it and tells the others to read it again.
"""

from collections.abc import Awaitable, Callable

from pydantic import BaseModel

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
from fairway_lifecycle.core.deadletters import project_of
from fairway_lifecycle.service import LifecycleService, Submission, concerns_lifecycle
from fairway_lifecycle.shards import ShardRouter
from fairway_telemetry import inject_headers, trace_headers_only, workload_context

ORG_RELOAD = "fairway.lifecycle.org-reload"  # core NATS: another replica recorded a change


async def _routed(router: ShardRouter | None, kind: str, project: str | None,
                  workload_id: str, payload: BaseModel, delivery: Delivery,
                  handle: Callable[[], Awaitable[None]]) -> None:
    """Handle it here when this replica holds its shard (always, without shards)."""
    if router is None or project is None:
        await handle()
        return
    if not router.holds(project):
        await router.hand_on(kind, project, workload_id, payload, delivery)
        return
    await handle()
    if not router.holds(project):  # lost meanwhile: the new holder does it again
        await router.hand_on(kind, project, workload_id, payload, delivery)


async def _submitted_batch(service: LifecycleService,
                           items: list[Received[WorkloadSubmitted]]) -> None:
    """A fetch's submissions: the ones of shards held here in one statement, the others
    handed on."""
    router = service.router
    submissions = []
    elsewhere = []
    # A third-party workload's owner made its pods: they are bound, never made (thirdparty.py).
    items = [item for item in items if not item.payload.third_party]
    for item in items:
        if router is not None and not router.holds(item.payload.project):
            elsewhere.append(item)
            continue
        with item.current():  # its Creating event carries on from its consumer span
            submissions.append(Submission(item.payload,
                                          trace_headers_only(item.delivery.headers),
                                          inject_headers()))
    for item in elsewhere:
        with item.current():
            await router.hand_on("workloads", item.payload.project,
                                 item.payload.workload_id, item.payload, item.delivery)
    if submissions:
        await service.submit_many(submissions)
    if router is not None:  # lost meanwhile: the new holder does it again
        handed = {id(item) for item in elsewhere}
        for item in items:
            if id(item) not in handed and not router.holds(item.payload.project):
                await router.hand_on("workloads", item.payload.project,
                                     item.payload.workload_id, item.payload, item.delivery)


def register(service: LifecycleService) -> None:
    _register_work(service)
    _register_org(service)


def _register_work(service: LifecycleService) -> None:
    broker = service.runtime.broker
    router = service.router

    def routed(*args):
        return _routed(router, *args)

    # Busy (every workload): a fetch's submissions in one statement.
    @durable_batch_subscriber(broker, streams.LIFECYCLE_WORKLOADS, WorkloadSubmitted)
    async def on_submitted(items: list[Received[WorkloadSubmitted]]) -> None:
        await _submitted_batch(service, items)

    async def submitted(event: WorkloadSubmitted, delivery: Delivery) -> None:
        if event.third_party:
            return  # its owner made its pods: they are bound, never made (thirdparty.py)
        await routed("workloads", event.project, event.workload_id, event, delivery,
                     lambda: service.submit_many([Submission(
                         event, trace_headers_only(delivery.headers), inject_headers())]))

    @durable_subscriber(broker, streams.LIFECYCLE_ACTIONS, WorkloadAction)
    async def on_action(action: WorkloadAction, delivery: Delivery) -> None:
        with workload_context(action.workload_id):
            await routed("actions", action.project, action.workload_id, action, delivery,
                         lambda: service.act(action))

    @durable_subscriber(broker, streams.LIFECYCLE_PREEMPTIONS, PreemptDecision)
    async def on_preempt(decision: PreemptDecision, delivery: Delivery) -> None:
        with workload_context(decision.workload_id):
            await routed("preemptions", decision.project, decision.workload_id, decision,
                         delivery, lambda: service.preempt(decision))

    async def on_pending(event: SchedulingPending, delivery: Delivery) -> None:
        with workload_context(event.workload_id):
            await routed("pending", event.project, event.workload_id, event, delivery,
                         lambda: service.pending(event))

    # Busy while workloads queue (about two a workload), though only a verdict "can never be
    # placed" and a third-party workload's reason (told to its pods) concern lifecycle: a
    # fetch is acknowledged at once, after those few (and those of shards held elsewhere,
    # handed on to their holder, which may have announced a third-party one).
    def concerns(event: SchedulingPending) -> bool:
        return (concerns_lifecycle(event) or service.thirdparty.announced_here(event.workload_id)
                or (router is not None and not router.holds(event.project)))

    @durable_batch_subscriber(broker, streams.LIFECYCLE_PENDING, SchedulingPending)
    async def on_pending_batch(items: list[Received[SchedulingPending]]) -> None:
        for item in items:
            if concerns(item.payload):
                with item.current():
                    await on_pending(item.payload, item.delivery)

    @durable_subscriber(broker, streams.LIFECYCLE_DECISIONS, BindDecision)
    async def on_bind(decision: BindDecision, delivery: Delivery) -> None:
        with workload_context(decision.workload_id):
            await routed("decisions", decision.project, decision.workload_id, decision,
                         delivery, lambda: service.bind(decision))

    @durable_subscriber(broker, streams.LIFECYCLE_DEADLETTERS, DeadLetter)
    async def on_dead_letter(letter: DeadLetter, delivery: Delivery) -> None:
        await routed("deadletters", project_of(letter), str(letter.stream_sequence), letter,
                     delivery, lambda: service.dead_letter(letter))

    if router is None:
        return
    # What a shard's holder does with a message handed on to it: the same as above.
    router.kind("workloads", WorkloadSubmitted, submitted)
    router.kind("actions", WorkloadAction, on_action)
    router.kind("preemptions", PreemptDecision, on_preempt)
    router.kind("pending", SchedulingPending, on_pending)
    router.kind("decisions", BindDecision, on_bind)
    router.kind("deadletters", DeadLetter, on_dead_letter)



def _register_org(service: LifecycleService) -> None:
    broker = service.runtime.broker
    router = service.router

    async def org_changed() -> None:
        if router is not None:
            await broker.publish(b"", ORG_RELOAD)

    @durable_subscriber(broker, streams.LIFECYCLE_PROJECTS, ProjectChanged)
    async def on_project(event: ProjectChanged, delivery: Delivery) -> None:
        await service.org_unit(event)
        await org_changed()

    @durable_subscriber(broker, streams.LIFECYCLE_DEPARTMENTS, DepartmentChanged)
    async def on_department(event: DepartmentChanged, delivery: Delivery) -> None:
        await service.org_unit(event)
        await org_changed()

    @durable_subscriber(broker, streams.LIFECYCLE_NODEPOOLS, NodePoolChanged)
    async def on_node_pool(event: NodePoolChanged, delivery: Delivery) -> None:
        await service.node_pool(event)
        await org_changed()

    if router is None:
        return

    @broker.subscriber(ORG_RELOAD, no_reply=True, include_in_schema=False)
    async def on_org_reload(body: bytes) -> None:
        await service.reload_org()
