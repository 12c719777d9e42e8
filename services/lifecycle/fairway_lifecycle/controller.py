"""The I/O shell around lifecycle's state machine (core/machine.py): watches pods and nodes,
feeds the machine, records and publishes what it folds, and carries out its Kubernetes intents.

Pod and node events arrive on watcher threads and are handed to the event loop, in the order
the API server sent them. The machine caches pods per workload, and folds at once on every pod
event, so every phase the cluster passed through is seen, even when the database is slower
than the cluster: a pod that is Running for a moment before it Succeeds still makes its
workload Running first. Folded changes queue per workload; the reconcile loop records the
changes of every workload that has some, each workload's in order, with their events in the
outbox, in one statement per batch of workloads (planned from the rows as last recorded; under
the rows' lock, in a transaction, when another writer changed one), then converges the pods
(creates or deletes them) in tasks of their own, several workloads in parallel, so a phase is
never recorded late because Kubernetes is slow to create other workloads' pods. Sequence
numbers in the database make every transition happen exactly once across restarts.
"""

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from opentelemetry import trace

from fairway_bus import publish_model
from fairway_contracts import Phase, subjects
from fairway_contracts.events import PreemptDecision
from fairway_contracts.workloads import utcnow
from fairway_kube import ListWatcher
from fairway_lifecycle import repository as repo
from fairway_lifecycle.core.fold import (
    LABEL_WORKLOAD,
    Desired,
    WorkloadInfo,
    finished,
    pod_done,
    refused_at_admission,
)
from fairway_lifecycle.core.machine import (
    CreatePod,
    DeleteObject,
    DeletePod,
    EnsureNamespace,
    EnsureObject,
    EvictPod,
    Intent,
    Machine,
    PodTarget,
    Step,
    Workload,
    converge,
    retire,
)
from fairway_lifecycle.core.nodes import node_inventory
from fairway_lifecycle.core.recording import Named, Recorded, Recording, plan
from fairway_lifecycle.core.retries import (
    CREATE_REJECTED,
    POD_SPEC_INVALID,
    backoff_delay,
    refusal_is_permanent,
    refusal_message,
)
from fairway_lifecycle.kube import Kube, KubeError
from fairway_runtime import Service
from fairway_store import add_many_to_outbox
from fairway_telemetry import inject_headers, workload_context, workload_span

log = logging.getLogger("fairway.lifecycle")
tracer = trace.get_tracer("fairway.lifecycle")

SYNCED = "SYNCED"  # in the queue of pod events: the (re-)list before it is complete


@dataclass
class Tracked:
    """An unfinished workload as last recorded (`row`; the machine keeps it as last folded),
    and the steps folded since, waiting to be recorded."""

    row: repo.WorkloadRow
    changes: list[Step] = field(default_factory=list)


def _target(row: repo.WorkloadRow) -> PodTarget:
    return PodTarget(row.workload_id, row.name, row.project, row.workload_type, row.spec,
                     row.namespace, row.attempt, row.phase, row.desired)


RECORD_BATCH = 500  # workloads recorded per transaction
# Recording transactions in flight at once (on disjoint workloads): while one waits for the
# database, the next batch is already on its way instead of queueing behind it.
RECORDINGS_IN_FLIGHT = 2
# The least time between two rounds of recording: pod events arrive a few at a time, and each
# round costs a statement, a round of the outbox relay (3 more) and a publish batch however
# few changes it records. A round every 20 ms at most: 50 a second, whatever the load, for a
# phase published at most 20 ms later.
RECORD_PAUSE = 0.02


def _named(row: repo.WorkloadRow) -> Named:
    return Named(row.workload_id, row.name, row.project, row.workload_type,
                 row.spec.auto_deletion_time_after_completion_seconds)


def _recorded(row: repo.WorkloadRow) -> Recorded:
    """What the row holds, as this process last recorded or changed it."""
    return Recorded(row.phase, row.sequence, row.desired, row.resuming, row.preempted,
                    row.podgroup_sequence, row.podgroup_signature)


def _apply(row: repo.WorkloadRow, recording: Recording) -> None:
    """After the commit: the tracked row is what the database now holds."""
    p = recording.progress
    row.phase, row.sequence, row.attempt = recording.phase, p.sequence, p.attempt
    row.podgroup_sequence, row.podgroup_signature = p.podgroup_sequence, p.podgroup_signature
    if recording.delete_after is not None:
        row.delete_after = recording.delete_after
    if recording.clear_resuming is not None:
        row.resuming = False
    if recording.clear_preempted:
        row.preempted, row.preempted_pods = False, recording.preempted_pods


class PodsUnbuildable(Exception):
    """The workload's pods cannot be built from its recorded spec."""


class Controller:
    def __init__(self, runtime: Service, kube: Kube, resync_seconds: float,
                 concurrency: int = 16, eviction_grace_seconds: int = 10,
                 retry_base_seconds: float = 0.5, retry_cap_seconds: float = 60.0,
                 below_requested_grace_seconds: float = 300.0):
        self.runtime = runtime
        self.below_requested_grace_seconds = below_requested_grace_seconds
        self.kube = kube
        self.resync_seconds = resync_seconds
        self.eviction_grace_seconds = eviction_grace_seconds
        self.machine = Machine()
        self.tracked: dict[str, Tracked] = {}
        self.dirty: set[str] = set()
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._synced = asyncio.Event()
        self._loaded = asyncio.Event()
        self._nodes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[ListWatcher] = []
        self._slots = asyncio.Semaphore(concurrency)  # converges in flight
        self._running: set[asyncio.Task] = set()
        self._deletions: dict[str, datetime] = {}  # autoDeletionTimeAfterCompletionSeconds
        self._held: set[str] = set()  # recording failed: retried after a pause
        # Converging failed for a reason that may pass: not converged again before the
        # back-off ends (recording goes on meanwhile). Attempts per workload, reset on success.
        self.retry_base_seconds, self.retry_cap_seconds = retry_base_seconds, retry_cap_seconds
        self._backing_off: set[str] = set()
        self._refused_pods: dict[str, set[str]] = {}  # pods a node refused, per workload
        self._attempts: dict[str, int] = {}
        # Batches in the database now, and their workloads: a workload is in at most one, so
        # its changes are recorded in order; it converges once its batch is done.
        self._recordings: set[asyncio.Future] = set()
        self._recording_ids: set[str] = set()
        self._follows: dict[str, bool] = {}  # converge in the submission's trace (see below)
        # Pod events from the watch thread, handed to the loop in bursts: one wake-up of the
        # loop per burst instead of one per event (see _on_pod_thread).
        self._pod_events: deque[tuple[str, dict[str, Any] | None]] = deque()
        self._pod_drain_due = False
        # Why a scheduling rule stopped a workload, as recorded before a restart: its phase
        # reason once it is tracked again. The node pool of each node, for utilization events.
        self._restored_stop_reasons: dict[str, tuple[str, str]] = {}
        self.node_pools: dict[str, str] = {}
        self.sharing: Any = None  # GpuSharing: sees every pod, and the nodes' GPU memory
        self.nodelevel: Any = None  # NodeLevelScheduler: sees every pod and every node
        # Shards (several replicas): whether a project's workloads are this replica's to
        # drive. None: all are (one replica). Every replica still watches every pod (the
        # node-level views need them all, and a shard taken over folds against pods already
        # cached); only the workloads of the shards held are tracked, recorded and converged.
        self.holds: Callable[[str], bool] | None = None
        self._adopting = False  # shards taken: their workloads load after the next list
        self._adoptions: list[asyncio.Future] = []  # resolved once they are loaded
        self._pod_watch: ListWatcher | None = None
        self.on_released: Callable[[list[str]], None] | None = None
        self.foreign: Any = None  # ForeignUsageTracker: adds foreign usage to the inventory

    @property
    def synced(self) -> bool:
        return self._loaded.is_set()

    @property
    def loaded(self) -> asyncio.Event:
        """Set once the pods are listed and the unfinished workloads loaded."""
        return self._loaded

    def pods_of(self, workload_id: str) -> list[dict[str, Any]]:
        return self.machine.pods_of(workload_id)

    def restore_stop_reasons(self, reasons: dict[str, tuple[str, str]]) -> None:
        """Before start: why the scheduling rules stopped workloads, as recorded."""
        self._restored_stop_reasons.update(reasons)

    # wiring -----------------------------------------------------------------------------
    async def start(self, *, watch: bool = True) -> None:
        """Watch pods and nodes, and run the loops. `watch=False` (tests): no watcher
        threads; the caller hands in pod events (`on_pod`, `on_pods_synced`)."""
        self._loop = asyncio.get_running_loop()
        self.runtime.background(self._reconcile_loop(), "reconcile")
        self.runtime.background(self._node_loop(), "node-inventory")
        self.runtime.background(self._tick(), "fold-tick")
        if not watch:
            return
        pod_watch = ListWatcher(
            self.kube.core.list_pod_for_all_namespaces, self._on_pod_thread, name="pods",
            label_selector=LABEL_WORKLOAD, resync_seconds=self.resync_seconds,
            on_synced=lambda: self._on_pod_thread(SYNCED, None),
        )
        node_watch = ListWatcher(
            self.kube.core.list_node, self._on_node_thread, name="nodes",
            resync_seconds=self.resync_seconds,
        )
        self._pod_watch = pod_watch
        self._watchers = [pod_watch, node_watch]
        for w in self._watchers:
            w.start()

    async def stop(self) -> None:
        for w in self._watchers:
            w.stop()
        in_flight = set(self._running) | self._recordings
        if in_flight:  # let the batch being recorded and converges in flight finish
            await asyncio.wait(in_flight, timeout=5)

    def _spawn(self, work: Any, name: str) -> None:
        """A task of its own, waited for (a while) when the service stops, like a converge."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def mark(self, workload_id: str) -> None:
        self.dirty.add(workload_id)
        self._wake.set()

    def desire(self, workload_id: str, desired: Desired, resuming: bool,
               stop_reason: tuple[str, str] | None = None) -> None:
        """A stop, resume or delete was recorded (a scheduling rule's stop with its reason):
        fold towards it and converge the pods."""
        t = self.tracked.get(workload_id)
        if t is None:
            return
        t.row.desired, t.row.resuming = desired, resuming
        self.machine.desire(workload_id, desired, resuming, stop_reason)
        self._fold(workload_id)
        self.mark(workload_id)

    def scale(self, workload_id: str, replicas: int) -> None:
        """An inference server's autoscaler set its replica count (recorded already): pods
        are made or deleted to match, and the fold expects that many."""
        t = self.tracked.get(workload_id)
        if t is None or not self.machine.rescale(workload_id, replicas):
            return
        t.row.spec = t.row.spec.model_copy(update={"pods": replicas})
        self._fold(workload_id)
        self.mark(workload_id)

    async def preempt(self, decision: PreemptDecision) -> None:
        """Record the preemption, then evict the pods (DisruptionTarget, graceful delete).
        The fold shows Pending (or Failed with terminateAfterPreemption); the pods come back
        when the scheduler places the workload again."""
        wid = decision.workload_id
        preemption = self.machine.preemption(wid, decision.pods)
        if wid not in self.tracked or preemption is None:
            log.info("preemption ignored: the workload is not running, or it is recorded "
                     "already", extra={"workload_id": wid})
            return
        info, row = self.machine.workloads[wid].info, self.tracked[wid].row
        preempted = info.preempted or preemption.whole
        async with self.runtime.pool.acquire() as conn:
            await repo.set_preempted(conn, wid, preempted, info.preempted_pods | preemption.uids)
        row.preempted, row.preempted_pods = preempted, info.preempted_pods | preemption.uids
        evictions = self.machine.preempt(wid, preemption, (decision.reason, decision.message))
        log.info("preempted (%s): %s", decision.reason, decision.message,
                 extra={"workload_id": wid})
        await self._carry_out(evictions)
        self._fold(wid)
        self.mark(wid)

    async def reject(self, workload_id: str, code: str, message: str) -> None:
        """The scheduler says the workload can never be placed: it fails with that reason and
        its unbound pods go."""
        if workload_id not in self.tracked or not self.machine.rejectable(workload_id):
            return
        async with self.runtime.pool.acquire() as conn:
            await repo.set_unschedulable(conn, workload_id, code, message)
        self.tracked[workload_id].row.unschedulable = (code, message)
        deletions = self.machine.reject(workload_id, code, message)
        self._fold(workload_id)
        self.mark(workload_id)
        await self._carry_out(deletions)

    def _mine(self, project: str) -> bool:
        return self.holds is None or self.holds(project)

    def track(self, row: repo.WorkloadRow) -> None:
        """Start driving a workload (a new submission, or an unfinished one after a restart);
        one of a shard this replica does not hold is left to the holder."""
        if not self._mine(row.project):
            return
        if row.workload_id in self.tracked or finished(row.phase, row.desired):
            if row.delete_after is not None and row.phase != Phase.DELETED:
                self._deletions[row.workload_id] = row.delete_after
            return
        self._drive(row)

    def _drive(self, row: repo.WorkloadRow) -> None:
        """Track the workload from its recorded row, fold it against its pods as they are."""
        wid = row.workload_id
        self.tracked[wid] = Tracked(row)
        self.machine.track(wid, Workload(
            replace(row.info, has_run=row.phase in (Phase.RUNNING, Phase.DEGRADED),
                    created=row.phase not in (None, Phase.CREATING),
                    below_requested_grace_seconds=self.below_requested_grace_seconds),
            row.phase, row.podgroup_signature,
            stop_reason=self._restored_stop_reasons.pop(wid, None)))
        self._fold(wid)
        self.mark(wid)

    def _untrack(self, workload_id: str) -> None:
        self.tracked.pop(workload_id, None)
        self._refused_pods.pop(workload_id, None)
        self.machine.forget(workload_id)

    # watch callbacks (threads) ------------------------------------------------------------
    def _on_pod_thread(self, kind: str, pod: dict[str, Any] | None) -> None:
        # Waking the loop costs a system call and a pass of the loop: during a burst of events
        # the watch thread only queues them while a drain is already due. The drain clears
        # the flag before it empties the queue, so an event queued after that is either seen
        # by this drain or schedules the next one; order is kept either way.
        self._pod_events.append((kind, pod))
        if not self._pod_drain_due:
            self._pod_drain_due = True
            self._loop.call_soon_threadsafe(self._drain_pod_events)

    def _drain_pod_events(self) -> None:
        self._pod_drain_due = False
        events = self._pod_events
        while events:
            kind, pod = events.popleft()
            if kind == SYNCED:
                self.on_pods_synced()
            else:
                self.on_pod(kind, pod)

    def _on_node_thread(self, kind: str, node: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._nodes.put_nowait, (kind, node))

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """A pod watch event, on the loop: fold its workload at once."""
        wid = self.machine.observe(kind, pod)
        if self.sharing is not None:
            self.sharing.on_pod(kind, pod)
        if self.nodelevel is not None:
            self.nodelevel.on_pod(kind, pod)
        if wid in self.tracked and kind != "DELETED" and refused_at_admission(pod):
            self._refused(wid, pod)
        if wid in self.tracked:
            self._fold(wid)
            self.mark(wid)

    # shards --------------------------------------------------------------------------------
    async def adopt(self) -> None:
        """Shards were taken (the `holds` predicate says which): their unfinished workloads
        are loaded from the database once the pods are listed afresh, and driven from there
        (what happened since their last holder recorded it is folded and published once; the
        sequence numbers keep a transition it recorded from being recorded again). Returns
        once they are loaded."""
        if not self._loaded.is_set():
            await self._loaded.wait()  # the first load, after the first list, takes them
            return
        done = asyncio.get_running_loop().create_future()
        self._adoptions.append(done)
        self._adopting = True
        if self._pod_watch is not None:
            self._pod_watch.relist()
        else:  # no watcher (tests hand pod events in): the cache is as fresh as it gets
            self.on_pods_synced()
        await done

    def release(self) -> list[str]:
        """Shards were lost or let go: their workloads are no longer driven here (the new
        holder resumes them from the database). The workloads let go."""
        gone = [wid for wid, t in self.tracked.items() if not self._mine(t.row.project)]
        for wid in gone:
            self._untrack(wid)
            self.dirty.discard(wid)
            self._deletions.pop(wid, None)
        for wid in [w for w in self._deletions if w not in self.tracked]:
            self._deletions.pop(wid, None)  # finished ones: their holder deletes them
        if gone:
            log.info("no longer driving %d workloads (their shards went)", len(gone))
        if self.on_released is not None:
            self.on_released(gone)
        return gone

    def on_pods_synced(self) -> None:
        """The pods are listed (first after a start, then after every re-list)."""
        first = not self._synced.is_set()
        self._synced.set()
        if first:
            self.runtime.background(self._load_active(), "load-active")
        elif self._adopting:
            self._adopting = False
            adoptions, self._adoptions = self._adoptions, []
            self.runtime.background(self._load_active(adoptions), "load-shards")
            for wid in list(self.tracked):
                self._fold(wid)
                self.mark(wid)
        else:
            for wid in list(self.tracked):  # after a re-list: catch up on what was missed
                self._fold(wid)
                self.mark(wid)

    async def _load_active(self, adoptions: list[asyncio.Future] | None = None) -> None:
        # After a restart, every unfinished workload is folded against the pods as they are
        # now: what happened while we were down is published now, once.
        # With shards, also when shards are taken over: the rows of those held now (the
        # database may be away a while: tried again until it answers).
        while True:
            try:
                async with self.runtime.pool.acquire() as conn:
                    rows = await repo.active(conn)
                    lingering = await repo.lingering(conn)
                break
            except Exception:
                if self.holds is None:
                    raise
                log.warning("loading the shards' workloads failed; again in 1 s",
                            exc_info=True)
                await asyncio.sleep(1.0)
        for row in rows:
            self.track(row)
        for row in lingering:
            # Over while pods still ran: announce how they are now (gone while we were
            # down, or still to be deleted), so the scheduler frees their devices.
            if row.workload_id not in self.tracked and self._mine(row.project):
                self._drive(row)
        if self.holds is None:  # with shards, other shards' pods stay: they may come here
            self.machine.forget_untracked_pods()  # finished workloads' pods: nothing to fold
            self._restored_stop_reasons.clear()  # the rest are finished
        self._loaded.set()
        for done in adoptions or ():
            if not done.done():
                done.set_result(None)

    # folding (synchronous, on every event) ------------------------------------------------
    def _fold(self, wid: str) -> None:
        step = self.machine.fold(wid, utcnow())
        if step is not None:
            self.tracked[wid].changes.append(step)

    async def _tick(self, seconds: float = 5.0) -> None:
        """Deadlines (an image that cannot be pulled for too long, a pod of an elastic
        workload waiting for room past its grace period) pass without a pod event: fold the
        workloads that are starting up, and the elastic ones that run, now and then."""
        while True:
            await asyncio.sleep(seconds)
            now = utcnow()
            for wid, due in list(self._deletions.items()):
                if due <= now:
                    del self._deletions[wid]
                    await self._auto_delete(wid)
            for wid, t in list(self.tracked.items()):
                w = self.machine.workloads[wid]
                if w.phase == Phase.INITIALIZING or (w.phase == Phase.RUNNING
                                                     and w.info.elastic):
                    self._fold(wid)
                    if self.tracked.get(wid) is t and t.changes:
                        self.mark(wid)

    async def _auto_delete(self, workload_id: str) -> None:
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            row = await repo.get_for_update(conn, workload_id)
            if row is None or row.phase == Phase.DELETED:
                return
            await repo.set_desired(conn, workload_id, "Deleted", False)
            row.desired = "Deleted"
        log.info("deleting the finished workload after its autoDeletionTimeAfterCompletion",
                 extra={"workload_id": workload_id})
        self._untrack(workload_id)
        self.track(row)

    # node inventory ------------------------------------------------------------------------
    async def _node_loop(self) -> None:
        while True:
            kind, node = await self._nodes.get()
            inventory = node_inventory(node, utcnow(), deleted=(kind == "DELETED"))
            if self.foreign is not None:
                inventory = self.foreign.inventory(inventory)
            self.node_pools[inventory.name] = inventory.node_pool
            if self.sharing is not None:
                self.sharing.put_node(inventory.name, inventory.gpu_memory_mib,
                                      deleted=inventory.deleted)
            if self.nodelevel is not None:
                self.nodelevel.put_node(node, deleted=kind == "DELETED")
            rv = node["metadata"].get("resourceVersion", "")
            await publish_model(self.runtime.js, subjects.node_inventory(inventory.name),
                                inventory, msg_id=f"node:{inventory.name}:{kind}:{rv}")

    # reconcile -----------------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        """Record what every dirty workload folded to, many workloads per transaction, then
        converge their pods in separate tasks. Recording never waits behind pod creation (a
        slow Kubernetes API), so a phase reaches the outbox as soon as the database allows;
        while a batch is in the database the next one gathers, and goes as soon as it has a
        slot (`RECORDINGS_IN_FLIGHT`), with the workloads not already being recorded."""
        await self._loaded.wait()
        loop = asyncio.get_running_loop()
        last_recording = 0.0
        while True:
            await self._wake.wait()
            # Folded changes gather a moment before they are recorded (`RECORD_PAUSE`).
            if (pause := last_recording + RECORD_PAUSE - loop.time()) > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            while len(self._recordings) >= RECORDINGS_IN_FLIGHT:
                await asyncio.wait(self._recordings, return_when=asyncio.FIRST_COMPLETED)
            pending = [(t, t.changes) for wid in self.dirty
                       if (t := self.tracked.get(wid)) is not None and t.changes
                       and wid not in self._held and wid not in self._recording_ids]
            for t, _ in pending:
                # Decided before recording: the reconcile of a workload still Creating
                # belongs to its submission's trace (see workload_span).
                self._follows[t.row.workload_id] = t.row.phase is Phase.CREATING
                t.changes = []
            if pending:
                last_recording = loop.time()
            for i in range(0, len(pending), RECORD_BATCH):
                while len(self._recordings) >= RECORDINGS_IN_FLIGHT:
                    await asyncio.wait(self._recordings, return_when=asyncio.FIRST_COMPLETED)
                self._start_recording(pending[i:i + RECORD_BATCH])
            ready = [wid for wid in self.dirty
                     if wid not in self._busy and wid not in self._recording_ids]
            self.dirty.difference_update(ready)
            for wid in ready:
                t = self.tracked.get(wid)
                follow = self._follows.pop(wid, None)
                if t is None or wid in self._held or wid in self._backing_off:
                    continue
                if t.changes:  # folded while its batch was recorded: recorded first
                    self.dirty.add(wid)
                    self._wake.set()
                    continue
                if finished(t.row.phase, t.row.desired) and self._finish(t):
                    continue
                if not self._converge_needed(t):
                    continue
                self._busy.add(wid)
                if follow is None:
                    follow = t.row.phase is Phase.CREATING
                task = asyncio.create_task(self._converge_one(wid, follow),
                                           name=f"converge-{wid[:8]}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    def _start_recording(self, batch: list[tuple[Tracked, list[Step]]]) -> None:
        """Record `batch` in a task of its own; its workloads stay dirty, and are converged
        by the loop's next round once it is done. Not a child of the loop: stopping, which
        cancels the loop, lets the batch in the database commit (see stop())."""
        ids = {t.row.workload_id for t, _ in batch}
        self._recording_ids.update(ids)
        recording = asyncio.ensure_future(self._record_safely(batch))
        self._recordings.add(recording)

        def done(future: asyncio.Future, ids: set[str] = ids) -> None:
            self._recordings.discard(future)
            self._recording_ids.difference_update(ids)
            self._wake.set()  # converge them, and record what they folded meanwhile

        recording.add_done_callback(done)

    async def _record_safely(self, batch: list[tuple[Tracked, list[Step]]]) -> None:
        try:
            batch = await self._record_quickly(batch)
        except Exception:  # one statement: nothing of it was recorded
            log.exception("recording %d workloads in one statement failed; recording them"
                          " under their lock", len(batch))
        if not batch:
            return
        try:
            await self._record(batch)
            return
        except Exception:
            if len(batch) == 1:
                wid = batch[0][0].row.workload_id
                log.exception("recording failed; will retry", extra={"workload_id": wid})
                self._retry_later(batch)
                return
            log.exception("recording %d workloads failed; recording them one by one",
                          len(batch))
        for one in batch:  # one bad workload must not hold the others back
            try:
                await self._record([one])
            except Exception:
                log.exception("recording failed; will retry",
                              extra={"workload_id": one[0].row.workload_id})
                self._retry_later([one])

    def _retry_later(self, batch: list[tuple[Tracked, list[Step]]]) -> None:
        for t, changes in batch:
            wid = t.row.workload_id
            t.changes[:0] = changes  # keep them, in order, before anything folded since
            self._held.add(wid)  # not recorded (nor converged) again before the retry

            def release(wid: str = wid) -> None:
                self._held.discard(wid)
                self.mark(wid)

            self._loop.call_later(0.5, release)

    @contextlib.contextmanager
    def _spans(self, batch: list[tuple[Tracked, list[Step]]]
               ) -> Iterator[dict[str, dict[str, str]]]:
        """A reconcile span per workload while its changes are recorded; the trace headers
        of each workload's span, for its events."""
        with contextlib.ExitStack() as spans:
            headers: dict[str, dict[str, str]] = {}
            for t, _ in batch:
                row = t.row
                # Until its pods exist a workload's reconcile belongs to the submission's
                # trace; later ones (transitions Kubernetes drives) start their own trace,
                # linked back to it. Each workload's events carry its own span's context.
                spans.enter_context(workload_span(
                    tracer, "lifecycle.reconcile", row.trace_headers,
                    follow=row.phase is Phase.CREATING,
                    attributes={"fairway.workload_id": row.workload_id,
                                "fairway.project": row.project,
                                "fairway.phase": row.phase.value}))
                headers[row.workload_id] = inject_headers()  # this workload's span
            yield headers

    async def _record_quickly(self, batch: list[tuple[Tracked, list[Step]]]
                              ) -> list[tuple[Tracked, list[Step]]]:
        """Record folded changes planned from the rows as this process last recorded them,
        with their events in the outbox, in one statement (one round trip, no transaction
        to open and commit), for the workloads whose rows still hold that. The rest, to be
        recorded under the rows' lock: rows changed by another writer meanwhile, and the
        rare changes that write more than the phase and the pod group."""
        with self._spans(batch) as headers:
            plans = [(t, plan(_named(t.row), steps, _recorded(t.row), self._folded(t),
                              self.node_pools))
                     for t, steps in batch]
            plans = [(t, p) for t, p in plans if not p.writes_more]
            if not plans:
                return batch
            async with self.runtime.pool.acquire() as conn:
                recorded = await repo.record_unless_moved(
                    conn, [(_recorded(t.row), p.progress) for t, p in plans],
                    [(t.row.workload_id, (o.subject, o.event, o.msg_id,
                                          headers[t.row.workload_id]))
                     for t, p in plans for o in p.outgoing])
        self._recorded_now([(t, p) for t, p in plans if t.row.workload_id in recorded])
        return [(t, steps) for t, steps in batch if t.row.workload_id not in recorded]

    async def _record(self, batch: list[tuple[Tracked, list[Step]]]) -> None:
        """Record folded changes, each workload's in order, with their events in the outbox,
        in one transaction for the whole batch, planned from the rows locked."""
        with self._spans(batch) as headers:
            async with self.runtime.pool.acquire() as conn, conn.transaction():
                fresh = await repo.lock_for_record(conn, [t.row.workload_id for t, _ in batch])
                plans = [(t, plan(_named(t.row), steps, fresh[t.row.workload_id],
                                  self._folded(t), self.node_pools))
                         for t, steps in batch if t.row.workload_id in fresh]
                await add_many_to_outbox(conn, [
                    (o.subject, o.event, o.msg_id, headers[t.row.workload_id])
                    for t, p in plans for o in p.outgoing])
                await repo.record_many(conn, [p.progress for _, p in plans])
                for t, p in plans:  # rare: one statement each
                    wid = t.row.workload_id
                    if p.clear_preempted:
                        await repo.set_preempted(conn, wid, False, p.preempted_pods)
                    if p.delete_after is not None:
                        await repo.set_delete_after(conn, wid, p.delete_after)
                    if p.clear_resuming is not None:
                        await repo.set_desired(conn, wid, p.clear_resuming, False)
        for t, _ in plans:  # memory catches up with what other writers committed
            r = fresh[t.row.workload_id]
            t.row.desired, t.row.resuming, t.row.preempted = r.desired, r.resuming, r.preempted
        self._recorded_now(plans)

    def _recorded_now(self, plans: list[tuple[Tracked, Recording]]) -> None:
        """After the commit: memory follows, the workloads over let go. The outbox relay is
        not woken from here: the commit's NOTIFY wakes it as soon, and waking it twice per
        commit made it read the outbox twice (3 statements a round), the second time mostly
        for nothing."""
        for t, p in plans:
            _apply(t.row, p)
            for event in p.published:
                log.info("%s → %s (%s): %s", event.previous_phase, event.phase, event.reason,
                         event.message, extra={"workload_id": t.row.workload_id})
            if finished(t.row.phase, t.row.desired):
                self._finish(t)

    def _folded(self, t: Tracked) -> WorkloadInfo:
        w = self.machine.workloads.get(t.row.workload_id)
        return w.info if w is not None else t.row.info

    def _finish(self, t: Tracked) -> bool:
        """Nothing more will happen to it: stop driving it once its pods are finished or gone
        (until then its leftover pods are deleted and their going reported), but delete it
        when it is due. True when it is no longer tracked."""
        row = t.row
        if not all(pod_done(p) for p in self.pods_of(row.workload_id)):
            return False  # a pod being deleted holds its resources until it is gone
        self._untrack(row.workload_id)
        if row.delete_after is not None and row.phase != Phase.DELETED:
            self._deletions[row.workload_id] = row.delete_after
        if retirement := retire(_target(row)):
            self._spawn(self._retire(row.workload_id, retirement),
                        f"retire-{row.workload_id[:8]}")
        return True

    async def _retire(self, wid: str, intents: list[Intent], attempt: int = 1) -> None:
        """Delete a finished workload's objects besides its pods; tried again, later each
        time, while Kubernetes fails (an object already gone is deleted)."""
        try:
            with workload_context(wid):
                await self._carry_out(intents)
        except Exception as exc:
            delay = backoff_delay(attempt, self.retry_base_seconds, self.retry_cap_seconds,
                                  random.uniform(0.5, 1.0))
            log.warning("deleting the workload's objects failed (attempt %d), again in %.1f s:"
                        " %s", attempt, delay, exc, extra={"workload_id": wid})
            self._loop.call_later(delay, lambda: self._spawn(
                self._retire(wid, intents, attempt + 1), f"retire-{wid[:8]}"))

    async def _converge_one(self, wid: str, follow: bool) -> None:
        try:
            async with self._slots:
                t = self.tracked.get(wid)
                if t is None:
                    return
                with workload_context(wid), workload_span(
                    tracer, "lifecycle.reconcile", t.row.trace_headers, follow=follow,
                    attributes={"fairway.workload_id": wid, "fairway.project": t.row.project,
                                "fairway.phase": t.row.phase.value},
                ):
                    await self._converge(t)
            self._attempts.pop(wid, None)
        except PodsUnbuildable as exc:
            await self._cannot_create(wid, POD_SPEC_INVALID,
                                      f"its pods cannot be built from the spec: {exc}")
        except KubeError as exc:
            if refusal_is_permanent(exc.status):
                await self._cannot_create(
                    wid, CREATE_REJECTED,
                    f"Kubernetes refused its {exc.what} ({exc.status}): "
                    f"{refusal_message(exc.body)}")
            else:
                self._back_off(wid, exc)
        except Exception as exc:
            self._back_off(wid, exc)
        finally:
            self._busy.discard(wid)
            if wid in self.dirty:
                self._wake.set()

    async def _cannot_create(self, wid: str, code: str, message: str) -> None:
        """No retry can make these pods: the workload fails, once, with the reason (recorded,
        so a restart does not try again); a workload already over is only backed off."""
        if wid in self.tracked and self.machine.rejectable(wid):
            log.warning("cannot create the pods: %s", message, extra={"workload_id": wid})
            self._attempts.pop(wid, None)
            await self.reject(wid, code, message)
        else:
            self._back_off(wid, RuntimeError(message))

    def _refused(self, wid: str, pod: dict[str, Any]) -> None:
        """A node refused a pod of the workload when it was bound: the pod is made again and
        placed again, after a pause that doubles with each refused pod of the workload (up to
        `retry_cap_seconds`), so a node that keeps refusing is no hot loop. A reservation pod
        of a device no fraction uses any more is the usual cause: those go at once."""
        seen = self._refused_pods.setdefault(wid, set())
        uid = pod["metadata"].get("uid")
        if uid in seen:
            return
        seen.add(uid)
        if self.sharing is not None:
            self.sharing.poke()
        delay = backoff_delay(len(seen), self.retry_base_seconds, self.retry_cap_seconds,
                              random.uniform(0.5, 1.0))
        log.warning("node %s refused pod %s; made again in %.1f s",
                    pod["spec"].get("nodeName"), pod["metadata"]["name"], delay,
                    extra={"workload_id": wid})
        self._pause(wid, delay)

    def _back_off(self, wid: str, error: Exception) -> None:
        """Converge again later: `retry_base_seconds` doubling up to `retry_cap_seconds`."""
        attempt = self._attempts[wid] = self._attempts.get(wid, 0) + 1
        delay = backoff_delay(attempt, self.retry_base_seconds, self.retry_cap_seconds,
                              random.uniform(0.5, 1.0))
        log.warning("converging the pods failed (attempt %d), again in %.1f s: %s",
                    attempt, delay, error, extra={"workload_id": wid})
        self._pause(wid, delay)

    def _pause(self, wid: str, delay: float) -> None:
        """No converging of the workload's pods for `delay` seconds, then at once."""
        self._backing_off.add(wid)

        def release() -> None:
            self._backing_off.discard(wid)
            self.mark(wid)

        self._loop.call_later(delay, release)

    def _intents(self, t: Tracked) -> list[Intent]:
        try:
            return converge(_target(t.row), self.pods_of(t.row.workload_id))
        except Exception as exc:  # a spec the pod builder cannot take: no retry helps
            raise PodsUnbuildable(f"{type(exc).__name__}: {exc}") from exc

    def _converge_needed(self, t: Tracked) -> bool:
        """Whether `_converge` has a call to make (most pod events need none)."""
        try:
            return bool(self._intents(t))
        except PodsUnbuildable:
            return True  # _converge_one fails the workload

    async def _converge(self, t: Tracked) -> None:
        """Make Kubernetes hold the pods the recorded attempt needs, and no older ones."""
        await self._carry_out(self._intents(t))

    async def _carry_out(self, intents: list[Intent]) -> None:
        """The machine's Kubernetes intents, in order."""
        for intent in intents:
            match intent:
                case EnsureNamespace(name):
                    await self.kube.ensure_namespace(name)
                case EnsureObject(manifest):
                    await self.kube.ensure_object(manifest)
                case DeleteObject(kind, namespace, name):
                    await self.kube.delete_object(kind, namespace, name)
                case CreatePod(manifest):
                    await self.kube.create_pod(manifest)
                case DeletePod(namespace, name, grace_seconds):
                    await self.kube.delete_pod(namespace, name, grace_seconds=grace_seconds)
                case EvictPod(namespace, name):
                    await self.kube.evict(namespace, name, self.eviction_grace_seconds)
