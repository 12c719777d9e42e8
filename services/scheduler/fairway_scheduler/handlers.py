"""The scheduler's message handlers: each hands one event (or one fetch of requests or of
pod-group events) to the `SchedulerService`, which stores it, applies it in memory after the
commit and asks for a cycle. Thin: the rules live in the service and the core."""

from fairway_bus import Delivery, Received, durable_batch_subscriber, durable_subscriber
from fairway_contracts.events import (
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    PodGroupChanged,
    ProjectChanged,
    WorkloadSubmitted,
)
from fairway_scheduler.service import SchedulerService


def register(service: SchedulerService) -> None:
    broker = service.runtime.broker
    consumers = service.consumers

    @durable_subscriber(broker, consumers.inventory, NodeInventory)
    async def on_node_inventory(event: NodeInventory, delivery: Delivery) -> None:
        await service.node_reported(event)

    @durable_batch_subscriber(broker, consumers.workloads, WorkloadSubmitted)
    async def on_workloads_submitted(items: list[Received[WorkloadSubmitted]]) -> None:
        await service.workloads_submitted(items)

    @durable_batch_subscriber(broker, consumers.podgroups, PodGroupChanged)
    async def on_pod_groups_changed(items: list[Received[PodGroupChanged]]) -> None:
        await service.pod_groups_changed(items)

    @durable_subscriber(broker, consumers.projects, ProjectChanged)
    async def on_project_changed(event: ProjectChanged, delivery: Delivery) -> None:
        await service.org_changed(event, delivery.stream_sequence)

    @durable_subscriber(broker, consumers.departments, DepartmentChanged)
    async def on_department_changed(event: DepartmentChanged, delivery: Delivery) -> None:
        await service.org_changed(event, delivery.stream_sequence)

    @durable_subscriber(broker, consumers.node_pools, NodePoolChanged)
    async def on_node_pool_changed(event: NodePoolChanged, delivery: Delivery) -> None:
        await service.org_changed(event, delivery.stream_sequence)
