"""Watches pods and nodes, folds pods into phases, creates and retries pods.

Pod and node events arrive on watcher threads and are handed to the event loop. Pods are
cached per workload; a changed workload is marked dirty, and one reconcile task folds it and,
when its phase changed, records the new phase and its event (outbox) in one transaction. One
task, so transitions of a workload are never computed concurrently; the sequence number in the
database makes every transition happen exactly once across restarts.
"""

import asyncio
import logging
from collections import defaultdict
from typing import Any

from opentelemetry import trace

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import NodeInventory, PhaseChanged, PodGroupChanged
from fairway_contracts.workloads import utcnow
from fairway_kube import ListWatcher
from fairway_lifecycle import repository as repo
from fairway_lifecycle.fold import (
    LABEL_WORKLOAD,
    attempt_of,
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
        labels=labels,
        deleted=deleted,
        observed_at=utcnow(),
    )


class Controller:
    def __init__(self, service: Service, kube: Kube, resync_seconds: float):
        self.service = service
        self.kube = kube
        self.resync_seconds = resync_seconds
        self.pods: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # wid -> name -> pod
        self.dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._synced = asyncio.Event()
        self._nodes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[ListWatcher] = []

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

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

    async def stop(self) -> None:
        for w in self._watchers:
            w.stop()

    def mark(self, workload_id: str) -> None:
        self.dirty.add(workload_id)
        self._wake.set()

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
        self.mark(wid)

    def _on_pods_synced(self) -> None:
        first = not self._synced.is_set()
        self._synced.set()
        if first:
            self.service.background(self._mark_active(), "mark-active")

    async def _mark_active(self) -> None:
        # After a restart, fold every unfinished workload once: changes that happened while
        # we were down are published now, exactly once.
        async with self.service.pool.acquire() as conn:
            for row in await repo.active(conn):
                self.mark(row.workload_id)

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
        await self._synced.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self.dirty = self.dirty, set()
            for wid in batch:
                try:
                    await self.reconcile(wid)
                except Exception:
                    log.exception("reconcile failed; will retry", extra={"workload_id": wid})
                    self.dirty.add(wid)
            if self.dirty:
                await asyncio.sleep(0.5)
                self._wake.set()

    async def reconcile(self, workload_id: str) -> None:
        async with self.service.pool.acquire() as conn:
            row = await repo.get(conn, workload_id)
        if row is None or row.phase.terminal:
            return
        with workload_context(workload_id), tracer.start_as_current_span(
            "lifecycle.reconcile", context=extract_context(row.trace_headers),
            attributes={"fairway.workload_id": workload_id, "fairway.project": row.project},
        ):
            await self._reconcile(row)

    async def _reconcile(self, row: repo.WorkloadRow) -> None:
        pods = list(self.pods.get(row.workload_id, {}).values())
        # Pods of earlier attempts are cleaned up; the fold ignores them already.
        for pod in pods:
            if attempt_of(pod) < row.attempt and not pod["metadata"].get("deletionTimestamp"):
                await self.kube.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                           grace_seconds=0)
        result = fold(row.info, pods)
        attempt = row.attempt + 1 if result.retry else row.attempt
        signature = pod_group_signature(pods)
        changed = (result.phase != row.phase or attempt != row.attempt
                   or signature != row.podgroup_signature)
        if changed and not await self._record(row, result, attempt, pods, signature):
            return  # the row changed under us; it is marked dirty and folds again
        if result.phase.terminal:
            return
        current = [p for p in pods if attempt_of(p) == attempt]
        if len(current) < row.spec.pods:
            await self._create_pods(row, attempt)

    async def _record(self, row: repo.WorkloadRow, result, attempt: int, pods,
                      signature: str) -> bool:
        """Record a new phase and/or pod group, with their events, in one transaction."""
        async with self.service.pool.acquire() as conn, conn.transaction():
            fresh = await repo.get_for_update(conn, row.workload_id)
            if fresh is None or (fresh.sequence, fresh.attempt, fresh.podgroup_sequence) != (
                    row.sequence, row.attempt, row.podgroup_sequence):
                self.mark(row.workload_id)  # changed under us: fold again
                return False
            now = utcnow()
            summary = summarize(pods)
            phase_event = None
            if result.phase != fresh.phase:
                sequence = fresh.sequence + 1
                phase_event = PhaseChanged(
                    event_id=f"{row.workload_id}:{sequence}",
                    workload_id=row.workload_id, name=row.name, project=row.project,
                    workload_type=row.workload_type, sequence=sequence,
                    previous_phase=fresh.phase, phase=result.phase, reason=result.reason,
                    message=result.message, time=now, pods=summary, attempt=attempt,
                )
                await repo.record_phase(conn, row.workload_id, phase=result.phase,
                                        reason=result.reason, message=result.message,
                                        sequence=sequence, attempt=attempt)
                await add_to_outbox(
                    conn, subjects.phase(row.project, row.workload_id, result.phase),
                    phase_event, msg_id=f"phase:{row.workload_id}:{sequence}")
                row.phase, row.sequence = result.phase, sequence
            group_sequence = fresh.podgroup_sequence + 1
            group = PodGroupChanged(
                event_id=f"{row.workload_id}:group:{group_sequence}",
                workload_id=row.workload_id, name=row.name, project=row.project,
                workload_type=row.workload_type, sequence=group_sequence, phase=result.phase,
                attempt=attempt, pods=summary, time=now,
            )
            await repo.record_pod_group(conn, row.workload_id, sequence=group_sequence,
                                        signature=signature, attempt=attempt)
            await add_to_outbox(conn, subjects.podgroup(row.project, row.workload_id), group,
                                msg_id=f"podgroup:{row.workload_id}:{group_sequence}")
        row.attempt, row.podgroup_sequence, row.podgroup_signature = (
            attempt, group_sequence, signature)
        if phase_event is not None:
            log.info("%s → %s (%s): %s", phase_event.previous_phase, result.phase,
                     result.reason, result.message, extra={"workload_id": row.workload_id})
        return True

    async def _create_pods(self, row: repo.WorkloadRow, attempt: int) -> None:
        await self.kube.ensure_namespace(row.namespace)
        existing = self.pods.get(row.workload_id, {})
        for pod in build_pods(workload_id=row.workload_id, name=row.name, project=row.project,
                              workload_type=row.workload_type, spec=row.spec, attempt=attempt,
                              namespace=row.namespace):
            if pod["metadata"]["name"] not in existing:
                await self.kube.create_pod(pod)
