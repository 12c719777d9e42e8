"""Watches pods and nodes, folds pods into phases, creates and retries pods.

Pod and node events arrive on watcher threads and are handed to the event loop, in the order
the API server sent them. Pods are cached per workload, and the fold runs at once on every pod
event, so every phase the cluster passed through is seen, even when the database is slower
than the cluster: a pod that is Running for a moment before it Succeeds still makes its
workload Running first. Folded changes queue per workload; reconcile tasks (one per workload at
a time, several workloads in parallel) record them in order, with their events in the outbox,
in one transaction, then create or delete pods. Sequence numbers in the database make every
transition happen exactly once across restarts.
"""

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import trace

from fairway_bus import publish_model
from fairway_contracts import Phase, PodSummary, subjects
from fairway_contracts.events import (
    NodeInventory,
    PhaseChanged,
    PodGroupChanged,
    PreemptDecision,
)
from fairway_contracts.workloads import utcnow
from fairway_kube import ListWatcher
from fairway_lifecycle import repository as repo
from fairway_lifecycle.fold import (
    LABEL_WORKLOAD,
    PhaseResult,
    attempt_of,
    finished,
    fold,
    pod_group_signature,
    summarize,
)
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.pods import build_pods
from fairway_runtime import Service
from fairway_store import add_to_outbox
from fairway_telemetry import extract_context, workload_context

log = logging.getLogger("fairway.lifecycle")
tracer = trace.get_tracer("fairway.lifecycle")

NODE_POOL_LABEL = "fairway.io/node-pool"


def _mib(quantity: str | None) -> int:
    if not quantity:
        return 0
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "K": 1 / 1048.576,
             "M": 1000 / 1048.576, "G": 1e6 / 1048.576}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(int(quantity) / (1024 * 1024))


def _millis(quantity: str | None) -> int:
    if not quantity:
        return 0
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


def node_inventory(node: dict[str, Any], deleted: bool = False) -> NodeInventory:
    meta, status = node["metadata"], node.get("status", {})
    labels = meta.get("labels") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    gpu_memory = labels.get("nvidia.com/gpu.memory")
    return NodeInventory(
        name=meta["name"],
        # First version: the pool is the node's fairway.io/node-pool label; pools defined by
        # other label keys arrive with the org API.
        node_pool=labels.get(NODE_POOL_LABEL, "default"),
        ready=ready and not deleted and not node.get("spec", {}).get("unschedulable", False),
        gpus=int(allocatable.get("nvidia.com/gpu", 0)),
        gpu_product=labels.get("nvidia.com/gpu.product"),
        gpu_memory_mib=int(gpu_memory) if gpu_memory and gpu_memory.isdigit() else None,
        cpu_millis=_millis(allocatable.get("cpu")),
        memory_mib=_mib(allocatable.get("memory")),
        max_pods=int(allocatable.get("pods", 110)),
        labels=labels,
        deleted=deleted,
        observed_at=utcnow(),
    )


@dataclass(frozen=True)
class Change:
    """One folded change of a workload, waiting to be recorded."""

    result: PhaseResult | None  # None when only the pod group changed
    attempt: int
    pods: list[PodSummary]
    signature: str
    time: datetime


@dataclass
class Tracked:
    """An unfinished workload: as last recorded (`row`) and as last folded (the rest)."""

    row: repo.WorkloadRow
    phase: Phase
    attempt: int
    signature: str
    has_run: bool = False  # reached Running in this attempt: what Degraded is measured from
    changes: list[Change] = field(default_factory=list)

    @classmethod
    def of(cls, row: repo.WorkloadRow) -> "Tracked":
        return cls(row, row.phase, row.attempt, row.podgroup_signature,
                   has_run=row.phase in (Phase.RUNNING, Phase.DEGRADED))


class Controller:
    def __init__(self, service: Service, kube: Kube, resync_seconds: float,
                 concurrency: int = 16, eviction_grace_seconds: int = 10):
        self.service = service
        self.kube = kube
        self.resync_seconds = resync_seconds
        self.concurrency = concurrency
        self.eviction_grace_seconds = eviction_grace_seconds
        self.pods: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # wid -> name -> pod
        self.tracked: dict[str, Tracked] = {}
        self.dirty: set[str] = set()
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._synced = asyncio.Event()
        self._loaded = asyncio.Event()
        self._nodes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[ListWatcher] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task] = set()
        self._deletions: dict[str, datetime] = {}  # autoDeletionTimeAfterCompletionSeconds

    @property
    def synced(self) -> bool:
        return self._loaded.is_set()

    # wiring -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        pod_watch = ListWatcher(
            self.kube.core.list_pod_for_all_namespaces, self._on_pod_thread, name="pods",
            label_selector=LABEL_WORKLOAD, resync_seconds=self.resync_seconds,
            on_synced=lambda: self._loop.call_soon_threadsafe(self._on_pods_synced),
        )
        node_watch = ListWatcher(
            self.kube.core.list_node, self._on_node_thread, name="nodes",
            resync_seconds=self.resync_seconds,
        )
        self._watchers = [pod_watch, node_watch]
        for w in self._watchers:
            w.start()
        self.service.background(self._reconcile_loop(), "reconcile")
        self.service.background(self._node_loop(), "node-inventory")
        self.service.background(self._tick(), "fold-tick")

    async def stop(self) -> None:
        for w in self._watchers:
            w.stop()
        if self._running:  # let reconciles in flight finish their transaction
            await asyncio.wait(set(self._running), timeout=5)

    def mark(self, workload_id: str) -> None:
        self.dirty.add(workload_id)
        self._wake.set()

    def desire(self, workload_id: str, desired: str, resuming: bool) -> None:
        """A stop, resume or delete was recorded: fold towards it and converge the pods."""
        t = self.tracked.get(workload_id)
        if t is None:
            return
        t.row.desired, t.row.resuming = desired, resuming
        if resuming:
            t.has_run = False
        self._fold(workload_id)
        self.mark(workload_id)

    async def preempt(self, decision: PreemptDecision) -> None:
        """Record the preemption, then evict the pods (DisruptionTarget, graceful delete).
        The fold shows Pending (or Failed with terminateAfterPreemption); the pods come back
        when the scheduler places the workload again."""
        wid = decision.workload_id
        t = self.tracked.get(wid)
        if t is None or finished(t.row.phase, t.row.desired) or t.row.desired != "Running":
            log.info("preemption of a workload that is not running ignored",
                     extra={"workload_id": wid})
            return
        pods = [p for p in self.pods.get(wid, {}).values()
                if decision.pods is None or p["metadata"]["name"] in decision.pods]
        uids = frozenset(p["metadata"]["uid"] for p in pods)
        if not (uids - t.row.preempted_pods) and t.row.preempted:
            return  # already recorded: a redelivery
        async with self.service.pool.acquire() as conn:
            await repo.set_preempted(conn, wid, True, t.row.preempted_pods | uids)
        t.row.preempted, t.row.preempted_pods = True, t.row.preempted_pods | uids
        t.has_run = False
        log.info("preempted (%s): %s", decision.reason, decision.message,
                 extra={"workload_id": wid})
        for pod in pods:
            await self.kube.evict(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                  self.eviction_grace_seconds)
        self._fold(wid)
        self.mark(wid)

    async def reject(self, workload_id: str, code: str, message: str) -> None:
        """The scheduler says the workload can never be placed: it fails with that reason and
        its unbound pods go."""
        t = self.tracked.get(workload_id)
        if t is None or t.row.unschedulable is not None or finished(t.row.phase, t.row.desired):
            return
        async with self.service.pool.acquire() as conn:
            await repo.set_unschedulable(conn, workload_id, code, message)
        t.row.unschedulable = (code, message)
        self._fold(workload_id)
        self.mark(workload_id)
        for pod in list(self.pods.get(workload_id, {}).values()):
            if not pod.get("spec", {}).get("nodeName"):
                await self.kube.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                           grace_seconds=0)

    def track(self, row: repo.WorkloadRow) -> None:
        """Start driving a workload (a new submission, or an unfinished one after a restart)."""
        if row.workload_id in self.tracked or finished(row.phase, row.desired):
            if row.delete_after is not None and row.phase != Phase.DELETED:
                self._deletions[row.workload_id] = row.delete_after
            return
        self.tracked[row.workload_id] = Tracked.of(row)
        self._fold(row.workload_id)
        self.mark(row.workload_id)

    # watch callbacks (threads) ------------------------------------------------------------
    def _on_pod_thread(self, kind: str, pod: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._on_pod, kind, pod)

    def _on_node_thread(self, kind: str, node: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._nodes.put_nowait, (kind, node))

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        wid = (meta.get("labels") or {}).get(LABEL_WORKLOAD)
        if not wid:
            return
        if kind == "DELETED":
            self.pods[wid].pop(meta["name"], None)
        else:
            self.pods[wid][meta["name"]] = pod
        if wid in self.tracked:
            self._fold(wid)
            self.mark(wid)

    def _on_pods_synced(self) -> None:
        first = not self._synced.is_set()
        self._synced.set()
        if first:
            self.service.background(self._load_active(), "load-active")
        else:
            for wid in list(self.tracked):  # after a re-list: catch up on what was missed
                self._fold(wid)
                self.mark(wid)

    async def _load_active(self) -> None:
        # After a restart, every unfinished workload is folded against the pods as they are
        # now: what happened while we were down is published now, once.
        async with self.service.pool.acquire() as conn:
            rows = await repo.active(conn)
        for row in rows:
            self.track(row)
        for wid in [w for w in self.pods if w not in self.tracked]:
            del self.pods[wid]  # finished workloads' pods: nothing to fold
        self._loaded.set()

    # folding (synchronous, on every event) ------------------------------------------------
    def _fold(self, wid: str) -> None:
        t = self.tracked[wid]
        if finished(t.phase, t.row.desired):
            return
        pods = list(self.pods.get(wid, {}).values())
        info = replace(t.row.info, attempt=t.attempt, has_run=t.has_run)
        result = fold(info, pods, utcnow())
        attempt = t.attempt + 1 if result.retry else t.attempt
        if result.retry:
            t.has_run = False
        elif result.phase == Phase.RUNNING:
            t.has_run = True
        if t.row.preempted and result.phase in (Phase.INITIALIZING, Phase.RUNNING):
            t.row.preempted = False  # placed again; recorded with the transition
        signature = pod_group_signature(pods)
        phase_changed = result.phase != t.phase
        if phase_changed or attempt != t.attempt or signature != t.signature:
            t.changes.append(Change(result if phase_changed else None, attempt,
                                    summarize(pods), signature, utcnow()))
            t.phase, t.attempt, t.signature = result.phase, attempt, signature

    async def _tick(self, seconds: float = 5.0) -> None:
        """Deadlines (an image that cannot be pulled for too long) pass without a pod event:
        fold the workloads that are starting up now and then."""
        while True:
            await asyncio.sleep(seconds)
            now = utcnow()
            for wid, due in list(self._deletions.items()):
                if due <= now:
                    del self._deletions[wid]
                    await self._auto_delete(wid)
            for wid, t in list(self.tracked.items()):
                if t.phase == Phase.INITIALIZING:
                    self._fold(wid)
                    if self.tracked.get(wid) is t and t.changes:
                        self.mark(wid)

    async def _auto_delete(self, workload_id: str) -> None:
        async with self.service.pool.acquire() as conn, conn.transaction():
            row = await repo.get_for_update(conn, workload_id)
            if row is None or row.phase == Phase.DELETED:
                return
            await repo.set_desired(conn, workload_id, "Deleted", False)
            row.desired = "Deleted"
        log.info("deleting the finished workload after its autoDeletionTimeAfterCompletion",
                 extra={"workload_id": workload_id})
        self.tracked.pop(workload_id, None)
        self.track(row)

    # node inventory ------------------------------------------------------------------------
    async def _node_loop(self) -> None:
        while True:
            kind, node = await self._nodes.get()
            inventory = node_inventory(node, deleted=(kind == "DELETED"))
            rv = node["metadata"].get("resourceVersion", "")
            await publish_model(self.service.js, subjects.node_inventory(inventory.name),
                                inventory, msg_id=f"node:{inventory.name}:{kind}:{rv}")

    # reconcile -----------------------------------------------------------------------------
    async def _reconcile_loop(self) -> None:
        await self._loaded.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            ready = [wid for wid in self.dirty if wid not in self._busy]
            self.dirty.difference_update(ready)
            for wid in ready:
                self._busy.add(wid)
                task = asyncio.create_task(self._reconcile_one(wid), name=f"reconcile-{wid[:8]}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _reconcile_one(self, wid: str) -> None:
        try:
            async with self._slots:
                await self.reconcile(wid)
        except Exception:
            log.exception("reconcile failed; will retry", extra={"workload_id": wid})
            await asyncio.sleep(0.5)
            self.dirty.add(wid)
        finally:
            self._busy.discard(wid)
            if wid in self.dirty:
                self._wake.set()

    async def reconcile(self, workload_id: str) -> None:
        t = self.tracked.get(workload_id)
        if t is None:
            return
        with workload_context(workload_id), tracer.start_as_current_span(
            "lifecycle.reconcile", context=extract_context(t.row.trace_headers),
            attributes={"fairway.workload_id": workload_id, "fairway.project": t.row.project},
        ):
            if t.changes:
                changes, t.changes = t.changes, []
                try:
                    await self._record(t, changes)
                except Exception:
                    t.changes[:0] = changes  # keep them, in order, for the retry
                    raise
            if finished(t.row.phase, t.row.desired):
                self.tracked.pop(workload_id, None)
                if t.row.delete_after is not None and t.row.phase != Phase.DELETED:
                    self._deletions[workload_id] = t.row.delete_after
                return
            await self._converge(t)

    async def _converge(self, t: Tracked) -> None:
        """Make Kubernetes hold the pods the recorded attempt needs, and no older ones."""
        row = t.row
        pods = list(self.pods.get(row.workload_id, {}).values())
        if row.desired in ("Stopped", "Deleted"):
            for pod in pods:  # stop and delete: every pod goes, gracefully
                if not pod["metadata"].get("deletionTimestamp"):
                    await self.kube.delete_pod(pod["metadata"]["namespace"],
                                               pod["metadata"]["name"])
            return
        for pod in pods:
            if attempt_of(pod) < row.attempt and not pod["metadata"].get("deletionTimestamp"):
                await self.kube.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                           grace_seconds=0)
        current = [p for p in pods if attempt_of(p) == row.attempt]
        if len(current) < row.spec.pods:
            await self._create_pods(row, row.attempt)

    async def _record(self, t: Tracked, changes: list[Change]) -> None:
        """Record folded changes in order, with their events, in one transaction."""
        row = t.row
        async with self.service.pool.acquire() as conn, conn.transaction():
            fresh = await repo.get_for_update(conn, row.workload_id)
            if fresh is None:
                return
            phase, sequence = fresh.phase, fresh.sequence
            published: list[PhaseChanged] = []
            for change in changes:
                result = change.result
                if result is None or result.phase == phase or finished(phase, fresh.desired):
                    continue
                sequence += 1
                event = PhaseChanged(
                    event_id=f"{row.workload_id}:{sequence}",
                    workload_id=row.workload_id, name=row.name, project=row.project,
                    workload_type=row.workload_type, sequence=sequence, previous_phase=phase,
                    phase=result.phase, reason=result.reason, message=result.message,
                    time=change.time, pods=change.pods, attempt=change.attempt,
                )
                await add_to_outbox(
                    conn, subjects.phase(row.project, row.workload_id, result.phase),
                    event, msg_id=f"phase:{row.workload_id}:{sequence}")
                published.append(event)
                phase = result.phase
                reason, message = result.reason, result.message
            if published:
                await repo.record_phase(conn, row.workload_id, phase=phase, reason=reason,
                                        message=message, sequence=sequence,
                                        attempt=changes[-1].attempt)
                if fresh.preempted and not row.preempted:
                    await repo.set_preempted(conn, row.workload_id, False, row.preempted_pods)
                seconds = row.spec.auto_deletion_time_after_completion_seconds
                if phase in (Phase.COMPLETED, Phase.FAILED) and seconds is not None:
                    row.delete_after = changes[-1].time + timedelta(seconds=seconds)
                    await repo.set_delete_after(conn, row.workload_id, row.delete_after)
                if fresh.resuming and phase not in (Phase.RESUMING, Phase.STOPPED,
                                                    Phase.STOPPING):
                    await repo.set_desired(conn, row.workload_id, fresh.desired, False)
                    row.resuming = False
            last = changes[-1]
            group_sequence = fresh.podgroup_sequence
            # The scheduler hears of the pod group when a pod appears, is bound, finishes or
            # goes away, and when the workload ends; a phase change alone is not its business.
            if last.signature != fresh.podgroup_signature or (
                    phase.terminal and not fresh.phase.terminal):
                group_sequence += 1
                group = PodGroupChanged(
                    event_id=f"{row.workload_id}:group:{group_sequence}",
                    workload_id=row.workload_id, name=row.name, project=row.project,
                    workload_type=row.workload_type, sequence=group_sequence, phase=phase,
                    attempt=last.attempt, pods=last.pods, time=last.time,
                )
                await add_to_outbox(conn, subjects.podgroup(row.project, row.workload_id),
                                    group, msg_id=f"podgroup:{row.workload_id}:{group_sequence}")
            await repo.record_pod_group(conn, row.workload_id, sequence=group_sequence,
                                        signature=last.signature, attempt=last.attempt)
        row.phase, row.sequence, row.attempt = phase, sequence, last.attempt
        row.podgroup_sequence, row.podgroup_signature = group_sequence, last.signature
        for event in published:
            log.info("%s → %s (%s): %s", event.previous_phase, event.phase, event.reason,
                     event.message, extra={"workload_id": row.workload_id})

    async def _create_pods(self, row: repo.WorkloadRow, attempt: int) -> None:
        await self.kube.ensure_namespace(row.namespace)
        existing = self.pods.get(row.workload_id, {})
        for pod in build_pods(workload_id=row.workload_id, name=row.name, project=row.project,
                              workload_type=row.workload_type, spec=row.spec, attempt=attempt,
                              namespace=row.namespace):
            if pod["metadata"]["name"] not in existing:
                await self.kube.create_pod(pod)
