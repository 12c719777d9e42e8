"""The scheduler's message handlers: each turns one event into state, in the tables first and
in memory after the commit, then asks for a cycle. Thin: the rules live in `state` and `core`.

The two workload consumers are independent: a workload's first phase event may arrive before
its submission. It becomes schedulable once both are known.

Org units (projects, departments, node pools) come from the ORG stream, which keeps the last
event per unit; each is stored unless a newer one (by stream sequence) is stored already, so a
redelivery changes nothing. A workload of a project not heard of yet queues with the core's
default quota (deserved 0, no limit, weight 1) until its project arrives.
"""

import logging
from dataclasses import dataclass

from fairway_bus import Delivery, Received, durable_batch_subscriber, durable_subscriber
from fairway_contracts import streams
from fairway_contracts.events import (
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    PodGroupChanged,
    ProjectChanged,
    WorkloadSubmitted,
)
from fairway_contracts.streams import ConsumerSpec
from fairway_runtime import Service
from fairway_scheduler import core, repository
from fairway_scheduler.cycle import Scheduler
from fairway_scheduler.state import WorkloadRequest, WorkloadStatus
from fairway_store import first_delivery
from fairway_telemetry import trace_headers_only, workload_context

log = logging.getLogger("fairway.scheduler")


@dataclass(frozen=True)
class SchedulerConsumers:
    """The durable consumers the scheduler reads; tests substitute their own."""

    inventory: ConsumerSpec = streams.SCHEDULER_INVENTORY
    workloads: ConsumerSpec = streams.SCHEDULER_WORKLOADS
    podgroups: ConsumerSpec = streams.SCHEDULER_PODGROUPS
    projects: ConsumerSpec = streams.SCHEDULER_PROJECTS
    departments: ConsumerSpec = streams.SCHEDULER_DEPARTMENTS
    node_pools: ConsumerSpec = streams.SCHEDULER_NODEPOOLS

    def all(self) -> tuple[ConsumerSpec, ...]:
        return (self.inventory, self.workloads, self.podgroups, self.projects,
                self.departments, self.node_pools)


def register(service: Service, scheduler: Scheduler, consumers: SchedulerConsumers) -> None:
    @durable_subscriber(service.broker, consumers.inventory, NodeInventory)
    async def on_node_inventory(event: NodeInventory, delivery: Delivery) -> None:
        await node_reported(scheduler, event)

    @durable_subscriber(service.broker, consumers.workloads, WorkloadSubmitted)
    async def on_workload_submitted(event: WorkloadSubmitted, delivery: Delivery) -> None:
        await workload_submitted(scheduler, event, delivery, consumers.workloads.durable)

    @durable_batch_subscriber(service.broker, consumers.podgroups, PodGroupChanged)
    async def on_pod_groups_changed(items: list[Received[PodGroupChanged]]) -> None:
        await pod_groups_changed(scheduler, items, consumers.podgroups.durable)

    @durable_subscriber(service.broker, consumers.projects, ProjectChanged)
    async def on_project_changed(event: ProjectChanged, delivery: Delivery) -> None:
        await org_changed(scheduler, event, delivery.stream_sequence)

    @durable_subscriber(service.broker, consumers.departments, DepartmentChanged)
    async def on_department_changed(event: DepartmentChanged, delivery: Delivery) -> None:
        await org_changed(scheduler, event, delivery.stream_sequence)

    @durable_subscriber(service.broker, consumers.node_pools, NodePoolChanged)
    async def on_node_pool_changed(event: NodePoolChanged, delivery: Delivery) -> None:
        await org_changed(scheduler, event, delivery.stream_sequence)


async def org_changed(scheduler: Scheduler,
                      event: ProjectChanged | DepartmentChanged | NodePoolChanged,
                      sequence: int) -> None:
    """A project, department or node pool as it is now: stored, then the queues follow."""
    async with scheduler.lock:
        async with scheduler.pool.acquire() as conn:
            if isinstance(event, ProjectChanged):
                stored = await repository.upsert_project(conn, event, sequence)
            elif isinstance(event, DepartmentChanged):
                stored = await repository.upsert_department(conn, event, sequence)
            else:
                stored = await repository.upsert_node_pool(conn, event, sequence)
        if not stored:
            return  # a redelivery, or older than what is stored
        if isinstance(event, ProjectChanged):
            scheduler.state.put_project(event)
        elif isinstance(event, DepartmentChanged):
            scheduler.state.put_department(event)
        else:
            scheduler.state.put_node_pool(event)
    log.info("org unit changed", extra={"fields": {
        "kind": type(event).__name__, "name": event.name, "deleted": event.deleted}})
    scheduler.changed()


async def node_reported(scheduler: Scheduler, event: NodeInventory) -> None:
    # No inbox here: the last report wins and the write is guarded by observed_at, so a
    # redelivery changes nothing without keeping an id per (frequent) inventory message.
    node = core.Node(name=event.name, pool=event.node_pool, ready=event.ready, gpus=event.gpus,
                     gpu_product=event.gpu_product, gpu_memory_mib=event.gpu_memory_mib,
                     cpu_millis=event.cpu_millis, memory_mib=event.memory_mib)
    async with scheduler.lock:
        async with scheduler.pool.acquire() as conn:
            if event.deleted:
                stored = await repository.delete_node(conn, event.name, event.observed_at)
            else:
                stored = await repository.upsert_node(conn, node, event.observed_at,
                                                      event.labels, event.max_pods)
        if not stored:
            return
        if event.deleted:
            scheduler.state.remove_node(event.name)
        elif not scheduler.state.same_node(node, event.labels, event.max_pods):
            scheduler.state.put_node(node, event.labels, event.max_pods)
        else:
            return  # the same node, observed again: nothing for a cycle
    scheduler.changed()


async def workload_submitted(scheduler: Scheduler, event: WorkloadSubmitted, delivery: Delivery,
                             consumer: str) -> None:
    with workload_context(event.workload_id):
        request = WorkloadRequest.from_event(event, trace_headers_only(delivery.headers))
        async with scheduler.lock:
            async with scheduler.pool.acquire() as conn, conn.transaction():
                if not await first_delivery(conn, consumer, delivery.msg_id):
                    return
                if not await repository.insert_request(conn, request):
                    return
                # Its last phase event may have come first, and may have ended it.
                finished = await repository.is_finished(conn, request.id)
            if finished:
                return
            scheduler.state.add_request(request)
        scheduler.changed()


async def pod_groups_changed(scheduler: Scheduler, items: list[Received[PodGroupChanged]],
                             consumer: str) -> None:
    """Pod groups as lifecycle sees them, a fetch at a time (thousands a minute while pods
    start and finish): stored and allocations released in one transaction, in stream order,
    then applied in memory, then one cycle asked for."""
    applied: list[tuple[WorkloadStatus, list[str]]] = []
    async with scheduler.lock:
        async with scheduler.pool.acquire() as conn, conn.transaction():
            for item in items:
                event = item.payload
                with item.current():
                    status = WorkloadStatus.from_event(
                        event, trace_headers_only(item.delivery.headers))
                    if not await first_delivery(conn, consumer, item.delivery.msg_id):
                        continue
                    stored = await repository.lock_status(conn, status.workload_id)
                    # After the workload is over, later pod-group events still come while its
                    # last pods go: they release what those pods held.
                    if stored is not None and status.sequence <= stored[0]:
                        log.debug("stale pod-group event ignored", extra={"fields": {
                            "sequence": status.sequence, "applied_sequence": stored[0]}})
                        continue
                    await repository.save_status(conn, status)
                    released = await repository.release_allocations(
                        conn, status.workload_id, keep=status.pods_holding())
                applied.append((status, released))
        for status, released in applied:  # after the commit
            scheduler.state.apply_status(status, released)
    for status, released in applied:
        if released:
            with workload_context(status.workload_id):
                log.info("allocations released", extra={"fields": {
                    "phase": status.phase.value, "pods": released}})
    if applied:
        scheduler.changed()
