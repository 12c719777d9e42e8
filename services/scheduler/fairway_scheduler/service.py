"""The scheduler service: the one object that runs it, around the pure core.

`SchedulerService` keeps the state in memory (`core.cluster.ClusterState`), applies what the
handlers receive (in the tables first, in memory after the commit) and runs the cycle: every
cycle takes a snapshot of the state (nodes in their pools, org queues, workloads,
allocations), asks the core for its decisions (`core.decide`: allocate, then consolidate,
reclaim, preempt and stale-gang eviction), then in ONE transaction stores the new allocations
and evictions and queues in the outbox one `BindDecision` per placed workload, a
`PreemptDecision` per victim, a `SchedulingPending` per workload whose reason changed (or that
stopped waiting; one that can never be placed is announced `unschedulable` once, and lifecycle
refuses it) and a `QueueStatusChanged` per queue whose status changed. Only after the commit
does the state in memory take them, so a failed commit changes nothing and the next cycle
decides again.

One lock orders every change and every cycle: an event handler never slips in between a
cycle's snapshot and its commit (a workload released by a phase event cannot be bound by a
cycle that saw it still waiting).

The two workload consumers are independent: a workload's first phase event may arrive before
its submission. It becomes schedulable once both are known. Org units (projects, departments,
node pools) come from the ORG stream, which keeps the last event per unit; each is stored
unless a newer one (by stream sequence) is stored already, so a redelivery changes nothing. A
workload of a project not heard of yet queues with the core's default quota (deserved 0, no
limit, weight 1) until its project arrives.
"""

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel

from fairway_bus import Received, connection
from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    BindDecision,
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    PodGroupChanged,
    PodPlacement,
    PreemptDecision,
    ProjectChanged,
    QueueStatusChanged,
    ResourceStatus,
    SchedulingCycle,
    SchedulingPending,
    WorkloadSubmitted,
)
from fairway_contracts.streams import ConsumerSpec
from fairway_contracts.workloads import utcnow
from fairway_runtime import Service
from fairway_scheduler import core, repository
from fairway_scheduler.core.cluster import (
    ClusterState,
    PendingInfo,
    WorkloadRequest,
    WorkloadStatus,
)
from fairway_scheduler.settings import SchedulerSettings
from fairway_telemetry import trace_headers_only, workload_context

log = logging.getLogger("fairway.scheduler")

QUEUE_USAGE = Gauge(
    "fairway_scheduler_queue_usage_seconds",
    "Time-aware fairness: a queue's usage in its window (resource-seconds: GPU-seconds, "
    "millicore-seconds, MiB-seconds; decayed), as last published",
    ["kind", "queue", "node_pool", "resource"])
QUEUE_ADJUSTED_WEIGHT = Gauge(
    "fairway_scheduler_queue_adjusted_over_quota_weight",
    "Time-aware fairness: the over-quota weight a queue's usage corrected it to (a share of "
    "its siblings'), as last published",
    ["kind", "queue", "node_pool", "resource"])
QUEUE_FAIR_SHARE = Gauge(
    "fairway_scheduler_queue_fair_share",
    "A queue's fair share (GPUs, millicores, MiB), as last published",
    ["kind", "queue", "node_pool", "resource"])
USAGE_FLUSHES = Counter(
    "fairway_scheduler_usage_flushes_total",
    "Usage history writes to the database, by outcome", ["outcome"])
CYCLE_SECONDS = Histogram(
    "fairway_scheduler_cycle_seconds",
    "Duration of a scheduling cycle that ran: snapshot, decide, persist.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
# The same cycles, by step: which one to look at when the cycle is slow (a snapshot or ledger
# that follows too much change, a decision at the cluster's scale, a slow database).
CYCLE_STEP_SECONDS = Histogram(
    "fairway_scheduler_cycle_step_seconds",
    "Duration of each step of a scheduling cycle that ran: snapshot (the cluster as the "
    "cycle sees it), ledger (what running pods hold), decide (the scheduling decision), "
    "commit (persist and publish).",
    ["step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CYCLE_STEPS = ("snapshot", "ledger", "decide", "commit")
for _step in CYCLE_STEPS:
    CYCLE_STEP_SECONDS.labels(_step)
PENDING_WORKLOADS = Gauge(
    "fairway_scheduler_pending_workloads",
    "Workloads with pods still waiting for a node after the last cycle.",
)
DECISIONS = Counter(
    "fairway_scheduler_decisions", "Scheduling decisions committed, by kind.", ["kind"],
)
DECISIONS.labels("bind")
DECISIONS.labels("preempt")
PREEMPTIONS = Counter(
    "fairway_scheduler_preemptions", "Preemption decisions committed, by reason.", ["reason"],
)
for _reason in ("reclaim", "preempt", "consolidate", "stale-gang"):
    PREEMPTIONS.labels(_reason)
KEPT_STATE_DIFFERENCES = Counter(
    "fairway_scheduler_kept_state_differences",
    "Cycles whose snapshot or ledger, kept between cycles, differed from one made afresh, or "
    "decided otherwise than on one made afresh (only with FAIRWAY_SCHEDULER_VERIFY_KEPT_STATE; "
    "the cycle fails, the next starts from the tables).",
)
PUBLISHED = Counter(
    "fairway_scheduler_status_events", "Queue status and pending events queued, by kind.",
    ["kind"],
)

# Decision ids are uuid5 names in this namespace (a fixed, arbitrary uuid).
_DECISION_NAMESPACE = uuid.UUID("6f1c2a43-5b7e-4d59-9a0e-2f4c8b1d7e30")


def decision_id(workload_id: str, sequence: int, pods: Sequence[str]) -> str:
    """The same pods of the same workload, seen waiting in the same phase event, always get the
    same id, so a repeated decision is dropped as a duplicate (outbox and JetStream). The
    sequence tells a later, legitimate placement of a pod with the same name (after its release)
    from a repeat."""
    name = f"{workload_id}/{sequence}/{','.join(sorted(pods))}"
    return str(uuid.uuid5(_DECISION_NAMESPACE, name))


KEPT_STATE_DIFFERS = "what the scheduler keeps between cycles differs from its state"
KEPT_DECISIONS_DIFFER = ("the cycle decided otherwise on the ledger kept between cycles than on "
                         "one made afresh")

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


@dataclass
class Outcome:
    """A cycle's result as the rows, events and changes in memory it commits."""

    now: datetime
    placements: list[core.Placement]
    decisions: list[BindDecision]
    preemptions: list[tuple[core.Eviction, PreemptDecision]]
    # each waiting workload's reason now (`core.reasons_by_workload`)
    pending: dict[str, core.WaitReason]
    pending_info: dict[str, PendingInfo]
    # a reason published after this is not published again for numbers alone (the refresh)
    refresh_after: datetime
    # the reasons told now: (workload id, its new reason, or None when it no longer waits),
    # those kept back not among them
    told: list[tuple[str, core.WaitReason | None]] = field(default_factory=list)
    pending_rows: list[tuple] = field(default_factory=list)
    pending_events: list[tuple[str, int, SchedulingPending]] = field(default_factory=list)
    # reasons whose refresh waits: compared again, and published, in a later cycle
    deferred: dict[str, core.WaitReason] = field(default_factory=dict)
    queue_changes: list[tuple[tuple[str, str, str], dict, int]] = field(default_factory=list)

    def writes(self) -> bool:
        return bool(self.decisions or self.pending_rows or self.queue_changes
                    or self.preemptions)


class SchedulerService:
    def __init__(self, runtime: Service, settings: SchedulerSettings,
                 consumers: SchedulerConsumers | None = None):
        self.runtime = runtime
        self.settings = settings
        self.consumers = consumers or SchedulerConsumers()
        self.state = ClusterState()
        self.lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._scheduled_version: int | None = None
        self._reload = False
        # (kind, name, pool) -> the queue's status, org id and payload last made of them
        self._queue_payloads: dict[tuple[str, str, str],
                                   tuple[core.QueueStatus, str | None, dict]] = {}
        # Time-aware fairness: what each queue held, over time (loaded with the state; added
        # to every cycle from the last cycle's queue status; written every flush interval).
        self.usage = core.UsageHistory(settings.usage_bucket_seconds)
        self._held: tuple[core.QueueStatus, ...] = ()  # the last cycle's queue status
        self._accrued_at: datetime | None = None
        self._decided_at: datetime | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.runtime.pool is not None, "the service has not started"
        return self.runtime.pool

    async def start(self, runtime: Service) -> None:
        """on_start hook: the state is loaded before the first message is consumed."""
        await self.load()
        runtime.background(self.run_cycles(), "scheduling-cycle")

    def changed(self) -> None:
        """Something a cycle cares about changed: run one soon."""
        self._changed.set()

    # events -----------------------------------------------------------------------------
    async def org_changed(self, event: ProjectChanged | DepartmentChanged | NodePoolChanged,
                          sequence: int) -> None:
        """A project, department or node pool as it is now: stored, then the queues follow."""
        async with self.lock:
            async with self.pool.acquire() as conn:
                if isinstance(event, ProjectChanged):
                    stored = await repository.upsert_project(conn, event, sequence)
                elif isinstance(event, DepartmentChanged):
                    stored = await repository.upsert_department(conn, event, sequence)
                else:
                    stored = await repository.upsert_node_pool(conn, event, sequence)
            if not stored:
                return  # a redelivery, or older than what is stored
            if isinstance(event, ProjectChanged):
                self.state.put_project(event)
            elif isinstance(event, DepartmentChanged):
                self.state.put_department(event)
            else:
                self.state.put_node_pool(event)
        log.info("org unit changed", extra={"fields": {
            "kind": type(event).__name__, "name": event.name, "deleted": event.deleted}})
        self.changed()

    async def node_reported(self, event: NodeInventory) -> None:
        # No inbox here: the last report wins and the write is guarded by observed_at, so a
        # redelivery changes nothing without keeping an id per (frequent) inventory message.
        node = core.Node(name=event.name, pool=event.node_pool, ready=event.ready,
                         gpus=event.gpus, gpu_product=event.gpu_product,
                         gpu_memory_mib=event.gpu_memory_mib, cpu_millis=event.cpu_millis,
                         memory_mib=event.memory_mib)
        foreign = (event.foreign.pods, event.foreign.gpus, event.foreign.cpu_millis,
                   event.foreign.memory_mib)
        async with self.lock:
            async with self.pool.acquire() as conn:
                if event.deleted:
                    stored = await repository.delete_node(conn, event.name, event.observed_at)
                else:
                    stored = await repository.upsert_node(conn, node, event.observed_at,
                                                          event.labels, event.max_pods,
                                                          foreign)
            if not stored:
                return
            if event.deleted:
                self.state.remove_node(event.name)
            else:
                changed = not self.state.same_node(node, event.labels, event.max_pods)
                if changed:
                    self.state.put_node(node, event.labels, event.max_pods)
                if not (self.state.put_foreign(event.name, *foreign) or changed):
                    return  # the same node, observed again: nothing for a cycle
        self.changed()

    async def workloads_submitted(self, items: list[Received[WorkloadSubmitted]]) -> None:
        """Workload requests, a fetch at a time: stored in one statement whatever their
        number, then known in memory, then one cycle asked for."""
        requests: dict[str, tuple[str, WorkloadRequest]] = {}
        for item in items:
            request = WorkloadRequest.from_event(item.payload,
                                                 trace_headers_only(item.delivery.headers))
            # a workload is submitted once: a second message for it changes nothing, unless
            # it is a higher revision (a scaled third-party owner)
            known = requests.get(request.id)
            if known is None or request.revision > known[1].revision:
                requests[request.id] = (item.delivery.msg_id, request)
        async with self.lock:
            async with self.pool.acquire() as conn:
                stored = await repository.store_requests(
                    conn, self.consumers.workloads.durable,
                    [item.delivery.msg_id for item in items], list(requests.values()))
            # Its last phase event may have come first, and may have ended it.
            added = [request for _, request in requests.values()
                     if request.id in stored and not stored[request.id]]
            for request in added:  # after the commit
                self.state.add_request(request)
        if added:
            self.changed()

    async def pod_groups_changed(self, items: list[Received[PodGroupChanged]]) -> None:
        """Pod groups as lifecycle sees them, a fetch at a time (thousands a minute while pods
        start and finish): stored and allocations released in one statement, in stream
        order, then applied in memory, then one cycle asked for."""
        events = [(item.delivery.msg_id,
                   WorkloadStatus.from_event(item.payload,
                                             trace_headers_only(item.delivery.headers)))
                  for item in items]
        async with self.lock:
            async with self.pool.acquire() as conn:
                stored = await repository.store_pod_groups(
                    conn, self.consumers.podgroups.durable, events)
            applied = self._applied(items, events, stored)
            for status, released in applied:  # after the commit
                self.state.apply_status(status, released)
        for status, released in applied:
            if released:
                with workload_context(status.workload_id):
                    log.info("allocations released", extra={"fields": {
                        "phase": status.phase.value, "pods": released}})
        if applied:
            self.changed()

    @staticmethod
    def _applied(items: list[Received[PodGroupChanged]],
                 events: list[tuple[str, WorkloadStatus]], stored: repository.PodGroupsStored
                 ) -> list[tuple[WorkloadStatus, list[str]]]:
        """The events applied, in stream order, each with the pods it released: by the
        first applied event of its workload that no longer holds it, as one after the other
        would have."""
        released: dict[str, set[str]] = {}
        for workload_id, pod in stored.released:
            released.setdefault(workload_id, set()).add(pod)
        result = []
        for index, (item, (_, status)) in enumerate(zip(items, events, strict=True)):
            if index not in stored.compared:
                continue  # a redelivery (or the same message twice in this fetch)
            applied, last = stored.compared[index]
            if not applied:
                # After the workload is over, later pod-group events still come while its
                # last pods go: they release what those pods held (when newer).
                with item.current():
                    log.debug("stale pod-group event ignored", extra={"fields": {
                        "sequence": status.sequence, "applied_sequence": last}})
                continue
            gone = released.get(status.workload_id)
            mine = sorted(gone - status.pods_holding()) if gone else []
            if gone:
                gone.difference_update(mine)
            result.append((status, mine))
        return result

    # the cycle --------------------------------------------------------------------------
    async def load(self) -> None:
        # What was accrued and not written yet is written first (the history is then loaded
        # again with the rest): a reload after a failure, or a new leader's, loses nothing.
        await self.flush_usage()
        state = ClusterState()
        now = utcnow()
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            for node, labels, max_pods in await repository.load_nodes(conn):
                state.put_node(node, labels, max_pods)
            for name, foreign in (await repository.load_foreign(conn)).items():
                state.put_foreign(name, *foreign)
            for project in await repository.load_projects(conn):
                state.put_project(project)
            for department in await repository.load_departments(conn):
                state.put_department(department)
            for pool in await repository.load_node_pools(conn):
                state.put_node_pool(pool)
            for request in await repository.load_requests(conn):
                state.add_request(request)
            loaded_at = utcnow()
            for status in await repository.load_statuses(conn):
                state.apply_status(status, released=(), now=loaded_at)
            for allocation in await repository.load_allocations(conn):
                state.allocations[(allocation.workload_id, allocation.pod)] = allocation
            evictions = await repository.load_evictions(conn)
            state.add_evictions(evictions)
            state.nominate_after_restart(evictions)
            pending = await repository.load_pending(conn)
            state.set_pending(reason for reason, _ in pending)
            state.pending_info = {reason.workload_id: info for reason, info in pending}
            state.queue_status = await repository.load_queue_status(conn)
            usage = await repository.load_usage(conn, self._retained_from(now))
        self.state = state
        self.usage = self._history(usage)
        self._held, self._accrued_at = (), None
        self._scheduled_version = None
        PENDING_WORKLOADS.set(len(state.pending))
        log.info("scheduling state loaded", extra={"fields": {
            "nodes": len(state.nodes), "workloads": len(state.requests),
            "allocations": len(state.allocations), "pending": len(state.pending)}})

    def _retained_from(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.settings.usage_retention_seconds)

    def _history(self, rows) -> core.UsageHistory:
        history = core.UsageHistory(self.settings.usage_bucket_seconds)
        size = history.bucket_seconds
        for key, start, gpu, cpu, memory in rows:
            history.add(key, math.floor(start.timestamp() / size), (gpu, cpu, memory),
                        record=False)
        return history

    async def flush_usage(self) -> None:
        """Write the usage accrued since the last flush (added to the stored buckets), and
        delete what is older than the retention. A failed write keeps it for the next."""
        rows = self.usage.drain()
        now = utcnow()
        size = self.usage.bucket_seconds
        try:
            async with self.pool.acquire() as conn:
                await repository.add_usage(
                    conn, [(key, datetime.fromtimestamp(bucket * size, UTC), size,
                            tuple(amounts)) for key, bucket, amounts in rows],
                    self._retained_from(now))
        except BaseException:
            for key, bucket, amounts in rows:
                pending = self.usage.pending.setdefault((key, bucket), [0.0, 0.0, 0.0])
                for r in range(3):
                    pending[r] += amounts[r]
            USAGE_FLUSHES.labels("failed").inc()
            raise
        self.usage.forget_before(self._retained_from(now))
        USAGE_FLUSHES.labels("written").inc()

    def _accrue(self, now: datetime) -> None:
        """What the queues held since the last cycle (its queue status) counts as usage."""
        if self._accrued_at is not None:
            self.usage.accrue(self._held, self._accrued_at, now)
        self._accrued_at = now

    def _refresh_due(self, now: datetime) -> bool:
        """With time-aware fairness on somewhere, fair shares move as time passes: a cycle
        runs every refresh interval even when nothing changed."""
        if not self.state.time_aware_anywhere(self.settings.time_aware()):
            return False
        return (self._decided_at is None or (now - self._decided_at).total_seconds()
                >= self.settings.time_aware_fairness_refresh_seconds)

    def reload_before_next_cycle(self) -> None:
        """The state in memory cannot be trusted (it could not be loaded): the next cycle
        loads it from the tables first, and runs soon."""
        self._reload = True
        self._changed.set()

    async def run_cycles(self) -> None:
        """Cycle until cancelled: soon after a change, and at least every cycle_seconds. The
        usage history is written every flush interval, and when the loop ends."""
        try:
            await self._cycle_loop()
        finally:
            with contextlib.suppress(Exception):
                await self.flush_usage()

    async def _cycle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        took = 0.0  # how long the last cycle took
        flushed = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.settings.cycle_seconds)
            # After a change, settle; and rest at least as long as the last cycle took: under
            # a burst of events (thousands of pods starting) back-to-back cycles would take a
            # whole CPU from the handlers and the rest of the platform, each deciding on
            # little more than the last. This keeps cycling to about half the time.
            if self._changed.is_set():
                rest = max(self.settings.settle_seconds, took * self.settings.cycle_rest_ratio)
                if rest:
                    await asyncio.sleep(rest)
            self._changed.clear()
            started = loop.time()
            try:
                result = await self.run_cycle()
                took = loop.time() - started
                if result is not None:
                    await self._announce_cycle(result, took)
            except Exception:
                # Memory and tables may disagree after a failure: start the next cycle from
                # the tables.
                if self.runtime.database_reachable:
                    log.exception("scheduling cycle failed; reloading the state")
                else:  # an outage: the probe has said so; one line per cycle is enough
                    log.warning("scheduling cycle skipped: the database is away")
                self._reload = True
            if loop.time() - flushed >= self.settings.usage_flush_seconds:
                flushed = loop.time()
                try:
                    await self.flush_usage()
                except Exception:
                    log.exception("usage history not written; kept for the next flush")

    async def _announce_cycle(self, result: core.CycleResult, took: float) -> None:
        """Tell whoever listens (the console's overview) what the cycle did; best effort,
        like a heartbeat: a lost one is replaced by the next."""
        cycle = SchedulingCycle(instance=self.runtime.instance, finished_at=utcnow(),
                                took_seconds=round(took, 6), placed=len(result.placements),
                                evicted=len(result.evictions), pending=len(result.pending))
        with contextlib.suppress(Exception):
            await connection(self.runtime.broker).publish(subjects.SCHEDULER_CYCLE,
                                                          cycle.to_json())

    async def run_cycle(self) -> core.CycleResult | None:
        """One cycle; None when nothing changed since the last one (it would decide the same)."""
        async with self.lock:
            if self._reload:
                await self.load()
                self._reload = False
            now = utcnow()
            self._accrue(now)
            if self.state.version == self._scheduled_version and not self._refresh_due(now):
                return None
            with CYCLE_SECONDS.time():
                time_aware = self.settings.time_aware()
                with CYCLE_STEP_SECONDS.labels("snapshot").time():
                    snapshot = self.state.snapshot(now, self.settings.disruption(),
                                                   time_aware=time_aware, usage=self.usage)
                with CYCLE_STEP_SECONDS.labels("ledger").time():
                    ledger = self.state.kept_ledger(snapshot)
                if self.settings.verify_kept_state:
                    fresh = self.state.snapshot(snapshot.now, snapshot.disruption, cached=False,
                                                time_aware=time_aware, usage=self.usage)
                    if fresh != snapshot or (ledger is not None and ledger.holdings()
                                             != core.Ledger.of(snapshot).holdings()):
                        KEPT_STATE_DIFFERENCES.inc()
                        log.error(KEPT_STATE_DIFFERS)
                        raise AssertionError(KEPT_STATE_DIFFERS)
                with CYCLE_STEP_SECONDS.labels("decide").time():
                    result = core.decide(snapshot, ledger)
                if (self.settings.verify_kept_state and ledger is not None
                        and core.decide(snapshot) != result):
                    # what is kept with the ledger for the cycle (indexes of running pods and
                    # waiting workloads, classes, runs, nodes and pools) is checked by its
                    # decisions: the same as on a ledger made afresh
                    KEPT_STATE_DIFFERENCES.inc()
                    log.error(KEPT_DECISIONS_DIFFER)
                    raise AssertionError(KEPT_DECISIONS_DIFFER)
                with CYCLE_STEP_SECONDS.labels("commit").time():
                    deferred = await self._commit(result)
            self._held, self._decided_at = result.queues, now
            self._scheduled_version = None if deferred else self.state.version
            return result

    async def _commit(self, result: core.CycleResult) -> bool:
        """Persist and announce the cycle's outcome; True when some pending reasons wait for
        their refresh (a later cycle must run even if nothing else changes)."""
        outcome = self._outcome(result)
        if outcome.writes():
            await self._persist(outcome)
        self._apply(outcome, result)
        return bool(outcome.deferred)

    def _outcome(self, result: core.CycleResult) -> Outcome:
        state = self.state
        now = utcnow()
        # Placements onto room that preempted pods still hold wait: the preemptor shows
        # WaitingForPreemption, and a later cycle's allocate binds it once the room is free.
        placements = [p for p in result.placements if not p.pipelined]
        # (by workload once, for the comparison here and the state after the commit)
        pending = core.reasons_by_workload(result.pending)
        outcome = Outcome(
            now=now, placements=placements,
            decisions=[self._bind_decision(placement) for placement in placements],
            preemptions=[(eviction, self._preempt_decision(eviction, now))
                         for eviction in result.evictions],
            pending=pending,
            # (`copy`: cloned whole; `dict()` would insert its tens of thousands anew)
            pending_info=state.pending_info.copy(),
            refresh_after=now - timedelta(seconds=self.settings.pending_refresh_seconds))
        self._pending_updates(outcome)
        for status in result.queues:
            key = (status.kind, status.name, status.pool)
            if _subject(subjects.queue_status, *key) is None:
                continue
            payload = self._queue_payload(key, status)
            last = state.queue_status.get(key)
            if last is not None and last[0] == payload:
                continue
            outcome.queue_changes.append((key, payload, (last[1] if last else 0) + 1))
        return outcome

    def _queue_payload(self, key: tuple[str, str, str], status: core.QueueStatus) -> dict:
        """`queue_payload`, made again only when the queue's status changed: most cycles leave
        most queues as they were, and making it costs pydantic models."""
        org_id = self.state.org_id(status.kind, status.name)
        made = self._queue_payloads.get(key)
        if made is not None and made[0] == status and made[1] == org_id:
            return made[2]
        payload = queue_payload(status, org_id)
        self._queue_payloads[key] = (status, org_id, payload)
        return payload

    def _pending_updates(self, outcome: Outcome) -> None:
        """Each waiting workload's reason compared with the last one told it (or kept back);
        where it changed, the row and event it makes (`_pending_update`), but for those whose
        numbers alone moved and were published a moment ago: those are kept back
        (`deferred`), to compare again later. At KAI's scale nearly every one of 40,000
        reasons changes every cycle, their numbers moving, and most are kept back: asked
        first, in one walk that makes nothing for them. (One published has its project and a
        subject, so the checks of `_pending_update` would not have stopped it.)"""
        old, new = self.state.pending, outcome.pending
        previous_of, info_of = old.get, outcome.pending_info.get
        after, deferred, told = outcome.refresh_after, outcome.deferred, outcome.told
        for workload_id, reason in new.items():
            previous = previous_of(workload_id)
            if previous is not None:
                if previous == reason:
                    continue
                if (previous.code == reason.code
                        and not (reason.unschedulable and previous.unschedulable)):
                    info = info_of(workload_id)
                    if (info is not None and info.published_at is not None
                            and info.published_at > after):
                        deferred[workload_id] = previous
                        continue
            told.append((workload_id, reason))
            self._pending_update(outcome, workload_id, reason)
        for workload_id in [wid for wid in old if wid not in new]:  # bound, or gone
            told.append((workload_id, None))
            self._pending_update(outcome, workload_id, None)

    def _pending_update(self, outcome: Outcome, workload_id: str,
                        reason: core.WaitReason | None) -> None:
        """The row and event (if any) a changed pending reason makes (`_pending_updates`)."""
        state, now = self.state, outcome.now
        info = outcome.pending_info.get(workload_id)
        previous = state.pending.get(workload_id)
        project = state.project_of(workload_id)
        if project is None or _subject(subjects.scheduling_pending, project,
                                        workload_id) is None:
            return
        if (reason is not None and reason.unschedulable and previous is not None
                and previous.unschedulable):
            return  # refused once already: said once (the numbers may move)
        version = (info.version if info else 0) + 1
        since = info.since if info is not None and reason is not None else now
        if reason is None:
            outcome.pending_info.pop(workload_id, None)
            event = SchedulingPending(workload_id=workload_id, project=project,
                                      pending=False, changed_at=now)
            outcome.pending_rows.append((workload_id, None, None, version))
        else:
            outcome.pending_info[workload_id] = PendingInfo(project, since, version, now)
            event = SchedulingPending(workload_id=workload_id, project=project,
                                      code=reason.code.value, message=reason.message,
                                      since=since, changed_at=now,
                                      unschedulable=reason.unschedulable)
            outcome.pending_rows.append((workload_id, reason, since, version))
        outcome.pending_events.append((workload_id, version, event))

    async def _persist(self, outcome: Outcome) -> None:
        """The outcome's rows and outbox messages, in one statement however many decisions
        the cycle made."""
        state, now = self.state, outcome.now
        evictions: list[tuple[str, str, str, str, str | None]] = []
        allocations: list[tuple[str, core.PodPlacement, str, int, int]] = []
        # (subject, event, msg id, trace headers), in the order they are published
        messages: list[tuple[str, BaseModel, str, Mapping[str, str] | None]] = []
        held_by = state.pods_held(e.workload_id for e, _ in outcome.preemptions)
        for eviction, decision in outcome.preemptions:
            held = sorted(held_by[eviction.workload_id])
            pods = held if eviction.pods is None else [p for p in eviction.pods if p in held]
            evictions += [(eviction.workload_id, pod, decision.decision_id, eviction.reason,
                           eviction.by) for pod in pods]
            messages.append((subjects.preempt(decision.project, decision.workload_id),
                             decision, f"preempt:{decision.decision_id}",
                             state.trace_headers(decision.workload_id) or None))
        for placement, decision in zip(outcome.placements, outcome.decisions, strict=True):
            request = state.requests[placement.workload_id]
            master = state.master_pod(placement.workload_id)
            for pod in placement.pods:
                # each pod at its own size: a distributed master sized apart at the master's
                held = request.allocation(placement.workload_id, pod, master=pod.pod == master)
                allocations.append((placement.workload_id, pod, decision.decision_id,
                                    held.cpu_millis, held.memory_mib))
            # one trace follows the workload from its submission
            messages.append((subjects.bind(decision.project, decision.workload_id), decision,
                             f"bind:{decision.decision_id}",
                             state.trace_headers(decision.workload_id)))
        for workload_id, version, event in outcome.pending_events:
            messages.append((subjects.scheduling_pending(event.project, workload_id), event,
                             # the version restarts after a workload stopped waiting: the
                             # cycle's time keeps the id unique
                             f"pending:{workload_id}:{version}:{now.timestamp()}",
                             state.trace_headers(workload_id) or None))
        for (kind, name, pool), payload, version in outcome.queue_changes:
            messages.append((subjects.queue_status(kind, name, pool),
                             QueueStatusChanged(**payload, changed_at=now),
                             f"queue:{kind}:{name}:{pool}:{version}", None))
        async with self.pool.acquire() as conn:
            await repository.save_outcome(conn, evictions=evictions, allocations=allocations,
                                          pending=outcome.pending_rows,
                                          queues=outcome.queue_changes, events=messages)

    def _apply(self, outcome: Outcome, result: core.CycleResult) -> None:
        """After the commit: the state in memory takes the outcome; logs and metrics."""
        state = self.state
        state.add_evictions(result.evictions)
        state.nominated = result.nominated
        for eviction, decision in outcome.preemptions:
            DECISIONS.labels("preempt").inc()
            PREEMPTIONS.labels(eviction.reason).inc()
            with workload_context(eviction.workload_id):
                log.info("workload preempted (%s): %s", eviction.reason, eviction.message,
                         extra={"fields": {"decision_id": decision.decision_id,
                                           "by": eviction.by, "pods": eviction.pods}})
        for placement, decision in zip(outcome.placements, outcome.decisions, strict=True):
            state.add_placement(placement)
            DECISIONS.labels("bind").inc()
            with workload_context(placement.workload_id):
                log.info("pods bound", extra={"fields": {
                    "decision_id": decision.decision_id,
                    "placements": {p.pod: f"{p.node}{list(p.gpu_devices)}"
                                   + (f"x{p.portion:g}" if p.portion is not None else "")
                                   for p in placement.pods}}})
        self._keep_pending(outcome)
        for key, payload, version in outcome.queue_changes:
            state.queue_status[key] = (payload, version)
            _queue_metrics(key, payload)
        PUBLISHED.labels("pending").inc(len(outcome.pending_events))
        PUBLISHED.labels("queue").inc(len(outcome.queue_changes))
        PENDING_WORKLOADS.set(len(result.pending))

    def _keep_pending(self, outcome: Outcome) -> None:
        """The pending reasons the state keeps after the commit (those kept back: the ones
        published before them, to compare again), and a log line for each reason told."""
        state = self.state
        for workload_id, reason in outcome.told:
            if reason is not None:
                with workload_context(workload_id):
                    log.info("workload pending: %s", reason.message,
                             extra={"fields": {"pending_code": reason.code.value}})
        state.pending_info = outcome.pending_info
        state.set_pending(outcome.pending)
        state.pending.update(outcome.deferred)  # compared again, and published, later

    def _preempt_decision(self, eviction: core.Eviction, now) -> PreemptDecision:
        status = self.state.statuses.get(eviction.workload_id)
        project = self.state.project_of(eviction.workload_id) or ""
        return PreemptDecision(
            # The same eviction of the same pods seen in the same pod-group state: the same id.
            decision_id=decision_id(eviction.workload_id, status.sequence if status else 0,
                                    [f"preempt:{eviction.reason}",
                                     *(eviction.pods or ("*",))]),
            workload_id=eviction.workload_id, project=project, reason=eviction.reason,
            by=eviction.by, message=eviction.message,
            pods=list(eviction.pods) if eviction.pods is not None else None, decided_at=now)

    def _bind_decision(self, placement: core.Placement) -> BindDecision:
        request = self.state.requests[placement.workload_id]
        status = self.state.statuses[placement.workload_id]
        return BindDecision(
            decision_id=decision_id(placement.workload_id, status.sequence,
                                    [p.pod for p in placement.pods]),
            workload_id=placement.workload_id,
            project=request.project,
            placements=[PodPlacement(pod=p.pod, node=p.node, gpu_devices=list(p.gpu_devices),
                                     portion=p.portion, gpu_memory_mib=p.gpu_memory_mib,
                                     gpu_limit=p.gpu_limit)
                        for p in placement.pods],
            decided_at=utcnow(),
        )



def queue_payload(status: core.QueueStatus, org_id: str | None) -> dict:
    """A queue's status as the fields of `QueueStatusChanged` (less its time): what the
    scheduler compares with the last one published, and stores."""

    def resource(r: core.ResourceStatus) -> dict:
        out = ResourceStatus(
            deserved=r.deserved, limit=r.limit, over_quota_weight=r.over_quota_weight,
            fair_share=round(r.fair_share, 3), allocated=round(r.allocated, 3),
            allocated_non_preemptible=round(r.allocated_non_preemptible, 3),
            requested=round(r.requested, 3),
            # Usage grows every cycle: three significant digits, so that a queue's status is
            # published again when its usage moved by about a thousandth, not every cycle.
            usage=None if r.usage is None else float(f"{r.usage:.3g}"),
            adjusted_over_quota_weight=(None if r.adjusted_over_quota_weight is None
                                        else round(r.adjusted_over_quota_weight, 3))
        ).model_dump()
        # Absent with time-aware fairness off: the status is what it always was.
        for key in ("usage", "adjusted_over_quota_weight"):
            if out[key] is None:
                del out[key]
        return out

    return {"kind": status.kind, "name": status.name, "org_id": org_id,
            "parent": status.parent, "node_pool": status.pool, "gpu": resource(status.gpu),
            "cpu": resource(status.cpu), "memory": resource(status.memory)}


def _queue_metrics(key: tuple[str, str, str], payload: dict) -> None:
    """A published queue status's figures as gauges (usage and the corrected weight only
    where time-aware fairness gives them)."""
    kind, name, pool = key
    for resource in ("gpu", "cpu", "memory"):
        figures = payload[resource]
        labels = (kind, name, pool, resource)
        QUEUE_FAIR_SHARE.labels(*labels).set(figures["fair_share"])
        if "usage" in figures:
            QUEUE_USAGE.labels(*labels).set(figures["usage"])
        if "adjusted_over_quota_weight" in figures:
            QUEUE_ADJUSTED_WEIGHT.labels(*labels).set(figures["adjusted_over_quota_weight"])


_UNPUBLISHABLE: set[tuple[str, ...]] = set()


def _subject(make, *tokens: str) -> str | None:
    """The subject, or None (logged once) when a name cannot be a NATS subject token (a node
    label value with a '.' as a pool name, say): that status is not published, and the cycle
    goes on."""
    try:
        return make(*tokens)
    except ValueError:
        if tokens not in _UNPUBLISHABLE:
            _UNPUBLISHABLE.add(tokens)
            log.warning("status not published: a name is not a subject token",
                        extra={"fields": {"tokens": list(tokens)}})
        return None
