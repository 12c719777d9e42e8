"""The scheduling cycle: the service shell around the pure core.

Every cycle takes a snapshot of the state in memory, asks `core.schedule` for placements and
pending reasons, then in ONE transaction stores the new allocations and queues one
`BindDecision` per placed workload in the outbox. Only after the commit does the state in memory
take the allocations, so a failed commit changes nothing and the next cycle decides again.

One lock orders every change and every cycle: an event handler never slips in between a
cycle's snapshot and its commit (a workload released by a phase event cannot be bound by a
cycle that saw it still waiting).
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from fairway_contracts import subjects
from fairway_contracts.events import BindDecision, PodPlacement
from fairway_contracts.workloads import utcnow
from fairway_runtime import Service
from fairway_scheduler import core, repository
from fairway_scheduler.settings import SchedulerSettings
from fairway_scheduler.state import ClusterState
from fairway_store import add_to_outbox
from fairway_telemetry import workload_context

log = logging.getLogger("fairway.scheduler")

CYCLE_SECONDS = Histogram(
    "fairway_scheduler_cycle_seconds",
    "Duration of a scheduling cycle that ran: snapshot, decide, persist.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PENDING_WORKLOADS = Gauge(
    "fairway_scheduler_pending_workloads",
    "Workloads with pods still waiting for a node after the last cycle.",
)
DECISIONS = Counter(
    "fairway_scheduler_decisions", "Scheduling decisions committed, by kind.", ["kind"],
)
DECISIONS.labels("bind")

# Decision ids are uuid5 names in this namespace (a fixed, arbitrary uuid).
_DECISION_NAMESPACE = uuid.UUID("6f1c2a43-5b7e-4d59-9a0e-2f4c8b1d7e30")


def decision_id(workload_id: str, sequence: int, pods: Sequence[str]) -> str:
    """The same pods of the same workload, seen waiting in the same phase event, always get the
    same id, so a repeated decision is dropped as a duplicate (outbox and JetStream). The
    sequence tells a later, legitimate placement of a pod with the same name (after its release)
    from a repeat."""
    name = f"{workload_id}/{sequence}/{','.join(sorted(pods))}"
    return str(uuid.uuid5(_DECISION_NAMESPACE, name))


class Scheduler:
    def __init__(self, service: Service, settings: SchedulerSettings):
        self.service = service
        self.settings = settings
        self.state = ClusterState()
        self.lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._scheduled_version: int | None = None
        self._reload = False

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.service.pool is not None, "the service has not started"
        return self.service.pool

    async def start(self, service: Service) -> None:
        """on_start hook: the state is loaded before the first message is consumed."""
        await self.load()
        service.background(self._loop(), "scheduling-cycle")

    def changed(self) -> None:
        """Something a cycle cares about changed: run one soon."""
        self._changed.set()

    async def load(self) -> None:
        state = ClusterState()
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            for node in await repository.load_nodes(conn):
                state.put_node(node)
            for request in await repository.load_requests(conn):
                state.add_request(request)
            for status in await repository.load_statuses(conn):
                state.apply_status(status, released=())
            for allocation in await repository.load_allocations(conn):
                state.allocations[(allocation.workload_id, allocation.pod)] = allocation
            state.set_pending(await repository.load_pending(conn))
        self.state = state
        self._scheduled_version = None
        PENDING_WORKLOADS.set(len(state.pending))
        log.info("scheduling state loaded", extra={"fields": {
            "nodes": len(state.nodes), "workloads": len(state.requests),
            "allocations": len(state.allocations), "pending": len(state.pending)}})

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.settings.cycle_seconds)
            if self._changed.is_set() and self.settings.settle_seconds:
                await asyncio.sleep(self.settings.settle_seconds)
            self._changed.clear()
            try:
                await self.run_cycle()
            except Exception:
                # Memory and tables may disagree after a failure: start the next cycle from
                # the tables.
                log.exception("scheduling cycle failed; reloading the state")
                self._reload = True

    async def run_cycle(self) -> core.CycleResult | None:
        """One cycle; None when nothing changed since the last one (it would decide the same)."""
        async with self.lock:
            if self._reload:
                await self.load()
                self._reload = False
            if self.state.version == self._scheduled_version:
                return None
            with CYCLE_SECONDS.time():
                result = core.schedule(self.state.snapshot())
                await self._commit(result)
            self._scheduled_version = self.state.version
            return result

    async def _commit(self, result: core.CycleResult) -> None:
        decisions = [self._bind_decision(placement) for placement in result.placements]
        pending_changes = self.state.pending_changes(result.pending)
        if decisions or pending_changes:
            async with self.pool.acquire() as conn, conn.transaction():
                for placement, decision in zip(result.placements, decisions, strict=True):
                    await repository.insert_allocations(conn, placement.workload_id,
                                                        placement.pods, decision.decision_id)
                    await add_to_outbox(
                        conn, subjects.bind(decision.project, decision.workload_id), decision,
                        msg_id=f"bind:{decision.decision_id}",
                        # one trace follows the workload from its submission
                        trace_headers=self.state.trace_headers(decision.workload_id),
                    )
                await repository.save_pending(conn, pending_changes)

        for placement, decision in zip(result.placements, decisions, strict=True):
            self.state.add_placement(placement)
            DECISIONS.labels("bind").inc()
            with workload_context(placement.workload_id):
                log.info("pods bound", extra={"fields": {
                    "decision_id": decision.decision_id,
                    "placements": {p.pod: f"{p.node}{list(p.gpu_devices)}"
                                   for p in placement.pods}}})
        for workload_id, reason in pending_changes:
            if reason is not None:
                with workload_context(workload_id):
                    log.info("workload pending: %s", reason.message,
                             extra={"fields": {"pending_code": reason.code.value}})
        self.state.set_pending(result.pending)
        PENDING_WORKLOADS.set(len(result.pending))

    def _bind_decision(self, placement: core.Placement) -> BindDecision:
        request = self.state.requests[placement.workload_id]
        status = self.state.statuses[placement.workload_id]
        return BindDecision(
            decision_id=decision_id(placement.workload_id, status.sequence,
                                    [p.pod for p in placement.pods]),
            workload_id=placement.workload_id,
            project=request.project,
            placements=[PodPlacement(pod=p.pod, node=p.node, gpu_devices=list(p.gpu_devices))
                        for p in placement.pods],
            decided_at=utcnow(),
        )
