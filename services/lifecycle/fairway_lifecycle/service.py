"""`LifecycleService`, the object that runs the lifecycle service: the controller (pods in,
phases out, through the state machine of core/machine.py) and the scheduling-rule enforcer,
and what each request the handlers receive does to them."""

import asyncio
import logging
import time
from dataclasses import dataclass

from fairway_contracts import Phase, subjects
from fairway_contracts.events import (
    BindDecision,
    DeadLetter,
    DepartmentChanged,
    NodePoolChanged,
    PhaseChanged,
    PodPlacement,
    PreemptDecision,
    ProjectChanged,
    SchedulingPending,
    WorkloadAction,
    WorkloadSubmitted,
)
from fairway_kube import urgent_calls
from fairway_kube.lease import LeaseTimings
from fairway_lifecycle import repository as repo
from fairway_lifecycle.controller import Controller
from fairway_lifecycle.core.autoscaler import Window
from fairway_lifecycle.core.deadletters import stalled_workload
from fairway_lifecycle.core.fractions import bind_in_flight
from fairway_lifecycle.core.grouping import is_third_party
from fairway_lifecycle.core.machine import action_ignored, desire_for
from fairway_lifecycle.core.pods import namespace_for
from fairway_lifecycle.core.retries import UNDELIVERABLE
from fairway_lifecycle.enforcer import RulesEnforcer
from fairway_lifecycle.foreign import ForeignUsageTracker
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.nodelevel import NodeLevelScheduler
from fairway_lifecycle.scaling import Autoscaler
from fairway_lifecycle.settings import LifecycleSettings
from fairway_lifecycle.shards import ShardKeeper, ShardRouter
from fairway_lifecycle.sharing import FractionBind, GpuSharing
from fairway_lifecycle.thirdparty import ThirdPartyDiscovery
from fairway_runtime import Service
from fairway_telemetry import workload_context

log = logging.getLogger("fairway.lifecycle.handlers")

ORG_RELOAD_SECONDS = 30.0  # with shards: the recorded rules read again at least this often


@dataclass(frozen=True)
class Submission:
    """A submitted workload as received: the event, the trace it was submitted in (kept with
    the workload), and the context its Creating event carries on (None: the current one)."""

    event: WorkloadSubmitted
    trace_headers: dict[str, str]
    event_headers: dict[str, str] | None = None


def _creating(row: repo.WorkloadRow) -> PhaseChanged:
    """A workload's first phase event, as its submission records it."""
    return PhaseChanged(
        event_id=f"{row.workload_id}:1", workload_id=row.workload_id, name=row.name,
        project=row.project, workload_type=row.workload_type, sequence=1,
        previous_phase=None, phase=Phase.CREATING, reason=row.reason, message=row.message,
        time=row.created_at)


def concerns_lifecycle(event: SchedulingPending) -> bool:
    """Whether a pending reason asks anything of lifecycle: only the verdict "can never be
    placed" does (the workload fails with it)."""
    return event.unschedulable and event.pending


class LifecycleService:
    """The controller and the enforcer over one runtime; the handlers call its methods."""

    def __init__(self, runtime: Service, settings: LifecycleSettings, kube: Kube):
        self.runtime = runtime
        self.settings = settings
        self.kube = kube
        self.controller = Controller(runtime, kube, settings.resync_seconds,
                                     eviction_grace_seconds=settings.eviction_grace_seconds,
                                     retry_base_seconds=settings.retry_base_seconds,
                                     retry_cap_seconds=settings.retry_cap_seconds,
                                     below_requested_grace_seconds=(
                                         settings.below_requested_grace_seconds))
        self.enforcer = RulesEnforcer(runtime, self.controller,
                                      window_seconds=settings.utilization_window_seconds,
                                      check_seconds=settings.rules_check_seconds)
        self.sharing = GpuSharing(kube, image=settings.reservation_image,
                                  namespace=settings.reservation_namespace,
                                  timeout_seconds=settings.reservation_timeout_seconds,
                                  check_seconds=settings.reservation_check_seconds,
                                  resync_seconds=settings.resync_seconds)
        self.controller.sharing = self.sharing
        self.nodelevel = NodeLevelScheduler(kube, self.sharing,
                                            check_seconds=settings.node_level_check_seconds)
        self.controller.nodelevel = self.nodelevel
        self.sharing.limits_bursts = self.nodelevel.enabled
        self.sharing.on_claim = self.nodelevel.poke
        self.autoscaler = Autoscaler(
            runtime, self.controller, metrics_url=settings.serving_metrics_url,
            period_seconds=settings.autoscale_seconds,
            window=Window(metric_seconds=settings.autoscale_metric_window_seconds,
                          scale_down_seconds=settings.autoscale_scale_down_seconds))
        self.sharing.find_unbound = lambda: [*self._unbound_fractions(),
                                             *self.thirdparty.unbound_fractions()]
        self.foreign = ForeignUsageTracker(kube, resync_seconds=settings.resync_seconds)
        self.controller.foreign = self.foreign
        self.thirdparty = ThirdPartyDiscovery(kube)
        self.foreign.listeners.append(self.thirdparty.on_pod)
        # third-party fraction pods share devices as native ones do (their watch is this one)
        self.foreign.listeners.append(
            lambda kind, pod: self.sharing.on_pod(kind, pod) if is_third_party(pod) else None)
        # Shards: None with one replica (it drives every workload, as it always has).
        self.router: ShardRouter | None = None
        self.keeper: ShardKeeper | None = None
        if settings.sharding:
            self.router = ShardRouter(runtime.broker, settings.shards, runtime.instance)
            runtime.broker.durable_consumers.append(self.router)
            self.controller.holds = self.router.drives
            self.controller.on_released = self.enforcer.release
            self.enforcer.sharded = True
            self.keeper = ShardKeeper(
                settings.shards, runtime.instance, settings.shard_lease_namespace,
                LeaseTimings(lease_seconds=settings.shard_lease_seconds,
                             renew_seconds=settings.shard_renew_seconds,
                             renew_deadline_seconds=settings.shard_renew_deadline_seconds,
                             retry_seconds=settings.shard_renew_seconds),
                kubeconfig=settings.kubeconfig, on_gained=self._shards_gained,
                on_lost=self._shards_lost)

    async def _shards_gained(self, shards: set[int]) -> None:
        """Taken (free, or a dead replica's): adopted in a task of its own, so the Lease
        renewals never wait for the database or the pod list."""
        assert self.router is not None
        self.router.driving |= shards
        self.runtime.background(self._adopt(shards), f"adopt-shards-{min(shards)}")

    async def _adopt(self, shards: set[int]) -> None:
        """Drive the shards' workloads from the database and a fresh list of pods, their
        usage clocks as last counted; only then take their messages (a message that came
        before would find the workload not driven yet: until then they wait, handed on)."""
        assert self.router is not None
        await self.enforcer.adopt()
        await self.controller.adopt()
        still = shards & self.router.driving  # lost meanwhile: not read here
        if still:
            await self.router.gained(still)

    async def _shards_lost(self, shards: set[int]) -> None:
        """Lost (or let go): stop driving their workloads first, then stop reading their
        handed-on messages (a message in hand finds the shard gone and hands itself on)."""
        assert self.router is not None
        self.router.held -= shards
        self.router.driving -= shards
        self.controller.release()
        await self.router.lost(shards)

    @property
    def ready(self) -> bool:
        return self.controller.synced

    async def start(self) -> None:
        # The rules first: stop reasons survive a restart.
        self.controller.restore_stop_reasons(await self.enforcer.load())
        await self.load_node_pools()
        await self.controller.start()
        self.sharing.start(self.runtime, self.controller.loaded)
        self.foreign.start(self.runtime)
        self.thirdparty.start(self.runtime)
        self.runtime.background(self.nodelevel.run(self.controller.loaded), "node-level")
        self.runtime.background(self.enforcer.run(), "scheduling-rules")
        self.runtime.background(self.autoscaler.run(), "autoscaling")
        if self.keeper is not None:
            self.runtime.background(self._reload_org(), "org-reload")
            self.keeper.start()

    async def stop(self) -> None:
        if self.keeper is not None:  # drive nothing more, then hand the shards on at once
            await self.keeper.stop()
        self.sharing.stop()
        self.foreign.stop()
        await self.controller.stop()
        self.kube.close()

    # requests -----------------------------------------------------------------------------------
    async def submit(self, event: WorkloadSubmitted, trace_headers: dict[str, str]) -> None:
        """One submission (see `submit_many`)."""
        await self.submit_many([Submission(event, trace_headers)])

    async def submit_many(self, submissions: list[Submission]) -> None:
        """Record submitted workloads with their Creating events, and drive them, in one
        statement for them all. Idempotent by state, not by inbox: each row is inserted
        once (its Creating event with it), and pods are ensured by the reconciler every time,
        so a crash between the commit and the pod creation still ends with pods."""
        first: dict[str, Submission] = {}
        for submission in submissions:  # the same one twice in a fetch: a redelivery
            first.setdefault(submission.event.workload_id, submission)
        rows = [self._first_row(s) for s in first.values()]
        async with self.runtime.pool.acquire() as conn:
            created = await repo.insert_workloads(conn, rows, [
                (row.workload_id, (subjects.phase(row.project, row.workload_id, Phase.CREATING),
                                   _creating(row), f"phase:{row.workload_id}:1",
                                   first[row.workload_id].event_headers))
                for row in rows])
            known = [row.workload_id for row in rows if row.workload_id not in created]
            # Known already (redelivered): driven from the row as recorded.
            recorded = await repo.get_many(conn, known) if known else []
        for row in rows:
            if row.workload_id in created:
                with workload_context(row.workload_id):
                    log.info("accepted %s %s", row.workload_type.value, row.name)
                self.controller.track(row)
        for row in recorded:
            self.controller.track(row)

    def _first_row(self, submission: Submission) -> repo.WorkloadRow:
        """The workload's row as a submission first records it: Creating, sequence 1."""
        event = submission.event
        namespace = namespace_for(event.project, self.settings.namespace_prefix)
        return repo.WorkloadRow(
            workload_id=event.workload_id, name=event.name, project=event.project,
            workload_type=event.workload_type, namespace=namespace, spec=event.spec,
            trace_headers=submission.trace_headers, attempt=1, phase=Phase.CREATING,
            reason="CreatingPods",
            message=f"creating {event.spec.pods} pod(s) in namespace {namespace}",
            sequence=1, created_at=event.created_at)

    async def act(self, action: WorkloadAction) -> None:
        """A stop, resume or delete. An action can overtake its workload's submission
        (another consumer): LookupError until the workload is known. Idempotent: asking for
        the same desired phase twice is one ask."""
        if action.action == "delete" and await self.thirdparty.delete_owner(action.workload_id):
            return  # a third-party workload: its top owner is deleted, its pods follow
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            row = await repo.get_for_update(conn, action.workload_id)
            if row is None:
                raise LookupError(f"{action.action} for a workload not known yet")
            if action_ignored(row.phase, row.desired, action.action):
                log.info("%s ignored: the workload is %s", action.action, row.phase.value)
                return
            if (desire := desire_for(row.desired, action.action)) is None:
                return
            desired, resuming = desire
            await repo.set_desired(conn, action.workload_id, desired, resuming)
            await self.enforcer.on_action(conn, action.workload_id, action.action)
        log.info("%s requested by %s", action.action, action.requested_by)
        # A finished workload being deleted: drive it again. One whose pods are still going
        # (an evicted pod's grace period) is still driven: `track` would ignore it, so it is
        # told like a running one.
        if row.phase.terminal and action.workload_id not in self.controller.tracked:
            row.desired, row.resuming = desired, False
            self.controller.track(row)
        else:
            self.controller.desire(action.workload_id, desired, resuming)

    async def preempt(self, decision: PreemptDecision) -> None:
        """Idempotent: a preemption already recorded only re-evicts what is still there."""
        with urgent_calls():  # the room it frees is the preemptor's
            if await self.thirdparty.preempt(decision, self.settings.eviction_grace_seconds):
                return  # a third-party workload: its pods evicted, its owner makes them again
            await self.controller.preempt(decision)

    async def pending(self, event: SchedulingPending) -> None:
        """A third-party workload's waiting pods are told why they wait (its owner made
        them: they say it as kube-scheduler would). Of Fairway's own, only the verdict "can
        never be placed" concerns lifecycle: the workload fails with the scheduler's reason
        instead of waiting for ever."""
        if await self.thirdparty.pending(event):
            return
        if not concerns_lifecycle(event):
            return
        await self.controller.reject(event.workload_id, event.code or "Unschedulable",
                                     event.message or "no node pool has room for it")

    async def dead_letter(self, letter: DeadLetter) -> None:
        """A message the workload cannot go on without was dead-lettered: it fails, saying
        which service could not handle what and why (idempotent: a failed workload is not
        failed again)."""
        if (stalled := stalled_workload(letter)) is None:
            return
        workload_id, why = stalled
        with workload_context(workload_id):
            await self.controller.reject(workload_id, UNDELIVERABLE, why)

    async def _reload_org(self) -> None:
        """With shards, one replica receives each organisation or node-pool change (a shared
        consumer) and records it; the others read the recorded rules again now and then, and
        at once when the receiver says so (core NATS, `reload_org`)."""
        while True:
            await asyncio.sleep(ORG_RELOAD_SECONDS)
            try:
                await self.reload_org()
            except Exception:  # the database may be away: next time
                log.warning("reading the scheduling rules again failed", exc_info=True)

    async def reload_org(self) -> None:
        await self.enforcer.load_rules()
        await self.load_node_pools()

    async def load_node_pools(self) -> None:
        """The pools' settings as recorded (before the node-level scheduler runs)."""
        async with self.runtime.pool.acquire() as conn:
            for pool in await repo.node_pools(conn):
                self.nodelevel.put_pool(pool)

    async def node_pool(self, event: NodePoolChanged) -> None:
        """Idempotent: the pool's current settings replace the ones kept (and recorded, for
        a restart)."""
        async with self.runtime.pool.acquire() as conn:
            await repo.save_node_pool(conn, event)
        self.nodelevel.put_pool(event)

    async def org_unit(self, event: ProjectChanged | DepartmentChanged) -> None:
        """Idempotent: the unit's whole current state replaces the one kept."""
        await self.enforcer.on_org_unit(event)

    async def bind(self, decision: BindDecision) -> None:
        """Bind the decision's pods. Idempotent in Kubernetes itself: a second bind answers
        409. Its calls go before pod creations waiting for a worker: the scheduler holds the
        room until the pods run and finish, so a binding kept waiting keeps that room from
        every workload behind it."""
        with urgent_calls():
            await self._bind(decision)

    async def _bind(self, decision: BindDecision) -> None:
        # The namespace is the row's: from memory while the workload is driven (binds come
        # for pods it has just created), else from the database.
        tracked = self.controller.tracked.get(decision.workload_id)
        namespace = tracked.row.namespace if tracked is not None else None
        if namespace is None:  # a third-party workload: its owner's pods, in their namespace
            namespace = self.thirdparty.namespace_of(decision.workload_id)
        if namespace is None:
            async with self.runtime.pool.acquire() as conn:
                namespace = await repo.namespace_of(conn, decision.workload_id)
        if namespace is None:
            raise LookupError(f"bind for unknown workload {decision.workload_id}")
        spec = tracked.row.spec if tracked is not None else None
        for placement in decision.placements:
            if placement.portion is not None or placement.gpu_memory_mib is not None:
                compute = None if tracked is not None else await \
                    self.thirdparty.fraction_compute(decision.workload_id, namespace,
                                                     placement.pod)
                if compute is not None:  # a third-party pod's fraction, by annotation
                    await self.sharing.bind(namespace, placement, compute,
                                            self.thirdparty.name_of(decision.workload_id))
                    continue
                if spec is None:
                    async with self.runtime.pool.acquire() as conn:
                        spec = next(iter(await repo.get_many(conn, [decision.workload_id]))
                                    ).spec
                name = tracked.row.name if tracked is not None else decision.workload_id
                await self.sharing.bind(namespace, placement, spec.compute, name)
                continue
            if placement.gpu_devices:
                await self.sharing.clear_for_whole(placement.node, placement.gpu_devices)
                # Which devices the scheduler chose, for a device plugin or a webhook to
                # honour and for people to read; written before the pod is bound.
                await self.kube.annotate(namespace, placement.pod, {
                    "fairway.io/gpu-devices": ",".join(map(str, placement.gpu_devices))})
            outcome = await self.kube.bind(namespace, placement.pod, placement.node)
            log.info("pod %s → node %s: %s", placement.pod, placement.node, outcome)

    def _unbound_fractions(self) -> list[FractionBind]:
        """Fraction pods of driven workloads that carry the node they are to be bound to but
        are not bound: their bind was under way when lifecycle stopped."""
        found = []
        now = time.monotonic()
        for wid, t in self.controller.tracked.items():
            for pod in self.controller.pods_of(wid):
                if (in_flight := bind_in_flight(pod)) is None:
                    continue
                node, devices = in_flight
                meta = pod["metadata"]
                found.append(FractionBind(
                    meta.get("namespace", t.row.namespace),
                    PodPlacement(pod=meta["name"], node=node, gpu_devices=devices),
                    t.row.spec.compute, t.row.name, now))
        return found
