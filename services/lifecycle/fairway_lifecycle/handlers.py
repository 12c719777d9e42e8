"""Lifecycle's message handlers: submitted workloads and bind decisions."""

import logging

from fairway_bus import Delivery, durable_subscriber
from fairway_contracts import Phase, streams, subjects
from fairway_contracts.events import (
    BindDecision,
    DepartmentChanged,
    PhaseChanged,
    PreemptDecision,
    ProjectChanged,
    SchedulingPending,
    WorkloadAction,
    WorkloadSubmitted,
)
from fairway_lifecycle import repository as repo
from fairway_lifecycle.controller import Controller
from fairway_lifecycle.pods import namespace_for
from fairway_lifecycle.settings import LifecycleSettings
from fairway_lifecycle.utilization import RulesEnforcer
from fairway_runtime import Service
from fairway_store import add_to_outbox
from fairway_telemetry import trace_headers_only, workload_context

log = logging.getLogger("fairway.lifecycle.handlers")


def register(service: Service, settings: LifecycleSettings, controller: Controller,
             enforcer: RulesEnforcer | None = None) -> None:
    @durable_subscriber(service.broker, streams.LIFECYCLE_WORKLOADS, WorkloadSubmitted)
    async def on_submitted(event: WorkloadSubmitted, delivery: Delivery) -> None:
        # Idempotent by state, not by inbox: the row is inserted once (its Creating event with
        # it), and pods are ensured by the reconciler every time, so a crash between the
        # commit and the pod creation still ends with pods.
        with workload_context(event.workload_id):
            namespace = namespace_for(event.project, settings.namespace_prefix)
            message = f"creating {event.spec.pods} pod(s) in namespace {namespace}"
            async with service.pool.acquire() as conn, conn.transaction():
                created = await repo.insert_workload(
                    conn, event, namespace, trace_headers_only(delivery.headers),
                    "CreatingPods", message)
                if created:
                    first = PhaseChanged(
                        event_id=f"{event.workload_id}:1", workload_id=event.workload_id,
                        name=event.name, project=event.project,
                        workload_type=event.workload_type, sequence=1, previous_phase=None,
                        phase=Phase.CREATING, reason="CreatingPods", message=message,
                        time=event.created_at,
                    )
                    await add_to_outbox(
                        conn, subjects.phase(event.project, event.workload_id, Phase.CREATING),
                        first, msg_id=f"phase:{event.workload_id}:1")
                row = await repo.get(conn, event.workload_id)
            if created:
                log.info("accepted %s %s", event.workload_type.value, event.name)
            if row is not None:
                controller.track(row)

    @durable_subscriber(service.broker, streams.LIFECYCLE_ACTIONS, WorkloadAction)
    async def on_action(action: WorkloadAction, delivery: Delivery) -> None:
        # An action can overtake its workload's submission (another consumer): retry until
        # the workload is known. Idempotent: asking for the same desired phase twice is one ask.
        with workload_context(action.workload_id):
            desired = {"stop": "Stopped", "resume": "Running", "delete": "Deleted"}[action.action]
            async with service.pool.acquire() as conn, conn.transaction():
                row = await repo.get_for_update(conn, action.workload_id)
                if row is None:
                    raise LookupError(f"{action.action} for a workload not known yet")
                if row.phase == Phase.DELETED or row.desired == "Deleted" or (
                        row.phase.terminal and action.action != "delete"):
                    log.info("%s ignored: the workload is %s", action.action, row.phase.value)
                    return
                resuming = action.action == "resume" and row.desired == "Stopped"
                if row.desired == desired and not resuming:
                    return
                await repo.set_desired(conn, action.workload_id, desired, resuming)
                if enforcer is not None:
                    await enforcer.on_action(conn, action.workload_id, action.action)
            log.info("%s requested by %s", action.action, action.requested_by)
            if row.phase.terminal:  # a finished workload being deleted: drive it again
                row.desired, row.resuming = desired, False
                controller.track(row)
            else:
                controller.desire(action.workload_id, desired, resuming)

    @durable_subscriber(service.broker, streams.LIFECYCLE_PREEMPTIONS, PreemptDecision)
    async def on_preempt(decision: PreemptDecision, delivery: Delivery) -> None:
        # Idempotent: a preemption already recorded only re-evicts what is still there.
        with workload_context(decision.workload_id):
            await controller.preempt(decision)

    @durable_subscriber(service.broker, streams.LIFECYCLE_PENDING, SchedulingPending)
    async def on_pending(event: SchedulingPending, delivery: Delivery) -> None:
        # Only the verdict "can never be placed" concerns lifecycle: the workload fails with
        # the scheduler's reason instead of waiting for ever.
        if not getattr(event, "unschedulable", False) or not event.pending:
            return
        with workload_context(event.workload_id):
            await controller.reject(event.workload_id, event.code or "Unschedulable",
                                    event.message or "no node pool has room for it")

    if enforcer is not None:
        @durable_subscriber(service.broker, streams.LIFECYCLE_PROJECTS, ProjectChanged)
        async def on_project(event: ProjectChanged, delivery: Delivery) -> None:
            # Idempotent: the project's whole current state replaces the one kept.
            await enforcer.on_org_unit(event)

        @durable_subscriber(service.broker, streams.LIFECYCLE_DEPARTMENTS, DepartmentChanged)
        async def on_department(event: DepartmentChanged, delivery: Delivery) -> None:
            await enforcer.on_org_unit(event)

    @durable_subscriber(service.broker, streams.LIFECYCLE_DECISIONS, BindDecision)
    async def on_bind(decision: BindDecision, delivery: Delivery) -> None:
        # Binding is idempotent in Kubernetes itself: a second bind answers 409.
        with workload_context(decision.workload_id):
            async with service.pool.acquire() as conn:
                row = await repo.get(conn, decision.workload_id)
            if row is None:
                raise LookupError(f"bind for unknown workload {decision.workload_id}")
            for placement in decision.placements:
                if placement.gpu_devices:
                    # Which devices the scheduler chose, for a device plugin or a webhook to
                    # honour and for people to read; written before the pod is bound.
                    await controller.kube.annotate(row.namespace, placement.pod, {
                        "fairway.io/gpu-devices": ",".join(map(str, placement.gpu_devices))})
                outcome = await controller.kube.bind(row.namespace, placement.pod, placement.node)
                log.info("pod %s → node %s: %s", placement.pod, placement.node, outcome)
