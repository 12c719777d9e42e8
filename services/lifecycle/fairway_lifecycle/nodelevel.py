"""The node-level scheduler, acting: on the nodes of pools with `nodeLevelSchedulerEnabled`,
it writes on each single-device fraction the device its GPU process runs on and the GPU memory
it may use there (core/nodelevel.py decides), records an Event on the pod for every change, and
counts them. The node honours the annotations (kubesim does; on a real cluster the GPU
interposer's node component does — docs/architecture.md, "Node-level scheduler").

It runs in lifecycle rather than in an agent on every node because everything it decides from
is here already: the fraction pods and their devices (the controller's pod watch), the
reservations and binds in flight (GpuSharing), the nodes and the pools' settings. The cluster
scheduler is not told: it keeps counting each fraction on the device it chose.
"""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from fairway_contracts.events import NodePoolChanged
from fairway_contracts.workloads import GPU_SWAP_LABEL
from fairway_lifecycle.core.fractions import (
    ANN_BIND_NODE,
    ANN_DEVICE_PLUGIN_UUIDS,
    LABEL_FRACTION,
)
from fairway_lifecycle.core.nodelevel import (
    LIMITED_REASON,
    MOVED_REASON,
    GpuDevice,
    Placement,
    SharingPod,
    current_limit,
    limit_message,
    move_message,
    moves,
    place,
    placement_annotations,
    sharing_pod,
)
from fairway_lifecycle.gpuswap import GpuSwapper, PoolSwap, pool_swap
from fairway_lifecycle.kube import Kube
from fairway_lifecycle.sharing import GpuSharing

log = logging.getLogger("fairway.lifecycle.nodelevel")

MOVES = Counter("fairway_lifecycle_node_level_moves_total",
                "GPU processes of fractions the node-level scheduler moved to another device "
                "(reason: spread onto an idle device, or consolidate back home)", ["reason"])
BURST_LIMITS = Counter("fairway_lifecycle_node_level_burst_kills_total",
                       "GPU processes restarted under a lower GPU memory limit because another "
                       "pod needs the device's memory (a burst ended)")

Key = tuple[str, str]
NODE_UUIDS = "fairway.io/gpu-uuids"  # a node's device UUIDs by index (kubesim; a node agent)


@dataclass
class PoolSetting:
    label_key: str | None
    label_value: str | None
    enabled: bool
    swap: PoolSwap | None = None  # GPU memory swap on its swap-capable nodes


@dataclass
class NodeGpus:
    count: int
    memory_mib: int
    labels: Mapping[str, str]
    uuids: list[str]


class NodeLevelScheduler:
    def __init__(self, kube: Kube, sharing: GpuSharing, *, check_seconds: float):
        self.kube = kube
        self.swapper = GpuSwapper(kube)
        self.sharing = sharing
        self.check_seconds = check_seconds
        self.pools: dict[str, PoolSetting] = {}
        self.nodes: dict[str, NodeGpus] = {}
        self.whole: dict[Key, tuple[str, tuple[str, ...]]] = {}  # whole-GPU pods: node, UUIDs
        self._poked = asyncio.Event()
        # nodes to look at again at once (a fraction or a whole-GPU pod on them changed);
        # every node is looked at every check_seconds, and after a pool or node changes
        self._dirty: set[str] = set()
        self._everything = True

    # inputs -----------------------------------------------------------------------------------
    def put_pool(self, event: NodePoolChanged) -> None:
        if event.deleted:
            self.pools.pop(event.name, None)
        else:
            self.pools[event.name] = PoolSetting(event.label_key, event.label_value,
                                                 event.node_level_scheduler_enabled,
                                                 pool_swap(event))
        self.poke()

    def put_node(self, node: dict[str, Any], deleted: bool = False) -> None:
        meta = node["metadata"]
        labels = meta.get("labels") or {}
        allocatable = node.get("status", {}).get("allocatable") or {}
        try:
            count = int(allocatable.get("nvidia.com/gpu", 0))
            memory = int(labels.get("nvidia.com/gpu.memory", 0))
        except ValueError:
            count = memory = 0
        if deleted or not count or not memory:
            self.nodes.pop(meta["name"], None)
            return
        uuids = (meta.get("annotations") or {}).get(NODE_UUIDS) or ""
        gpus = NodeGpus(count, memory, labels, [u for u in uuids.split(",") if u])
        if self.nodes.get(meta["name"]) != gpus:
            self.nodes[meta["name"]] = gpus
            self.poke(meta["name"])

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """Whole-GPU pods claim the devices the device plugin gave them; a fraction's change
        (bound, running, finished) is a reason to look again."""
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        fraction = (meta.get("labels") or {}).get(LABEL_FRACTION) == "true"
        uuids = tuple(u for u in ((meta.get("annotations") or {}).get(ANN_DEVICE_PLUGIN_UUIDS)
                                  or "").split(",") if u)
        node = pod.get("spec", {}).get("nodeName")
        done = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if kind == "DELETED" or done or fraction or not uuids or not node:
            gone = self.whole.pop(key, None)
            if gone is not None:
                self.poke(gone[0])
        elif self.whole.get(key) != (node, uuids):
            self.whole[key] = (node, uuids)
            self.poke(node)
        if fraction:
            self.poke(node or (meta.get("annotations") or {}).get(ANN_BIND_NODE))

    def _member(self, node: str) -> list[PoolSetting]:
        gpus = self.nodes.get(node)
        if gpus is None:
            return []
        labels = gpus.labels
        member = [p for name, p in self.pools.items() if name != "default" and p.label_key
                  and labels.get(p.label_key) == (p.label_value or "")]
        if not member and "default" in self.pools:
            member = [self.pools["default"]]
        return member

    def enabled(self, node: str) -> bool:
        return any(p.enabled for p in self._member(node))

    def swap_of(self, node: str) -> PoolSwap | None:
        """The swap settings of the node's pool when it is swap-capable and swap is on."""
        gpus = self.nodes.get(node)
        if gpus is None or gpus.labels.get(GPU_SWAP_LABEL) != "true":
            return None
        return next((p.swap for p in self._member(node) if p.swap is not None), None)

    # acting -----------------------------------------------------------------------------------
    def poke(self, node: str | None = None) -> None:
        """Look again at once: at `node`, or at every node."""
        if node is None:
            self._everything = True
        else:
            self._dirty.add(node)
        self._poked.set()

    async def run(self, pods_loaded: asyncio.Event) -> None:
        await pods_loaded.wait()
        while True:
            self._poked.clear()
            nodes = None if self._everything else set(self._dirty)
            self._everything, self._dirty = False, set()
            try:
                await self.converge(nodes)
            except Exception:
                log.exception("the node-level scheduler failed; trying again")
                self._everything = True
            try:
                await asyncio.wait_for(self._poked.wait(), self.check_seconds)
            except TimeoutError:
                self._everything = True

    def _fractions(self) -> dict[str, dict[Key, dict[str, Any]]]:
        by_node: dict[str, dict[Key, dict[str, Any]]] = {}
        for (node, _), holders in self.sharing.sharers.items():
            for key, pod in holders.items():
                by_node.setdefault(node, {})[key] = pod
        return by_node

    def _claimed(self, node: str, gpus: NodeGpus) -> set[int]:
        """Devices taken by something other than the node's fractions: whole-GPU pods, and
        fractions on their way (reserved or being bound, not yet bound)."""
        index = {u: i for i, u in enumerate(gpus.uuids)}
        taken = {index[u] for n, uuids in self.whole.values() if n == node
                 for u in uuids if u in index}
        taken |= {i for (n, i) in self.sharing.claims if n == node}
        return taken

    async def converge(self, nodes: set[str] | None = None) -> None:
        """Act on every node's fractions (or those of `nodes`)."""
        for node, pods in sorted(self._fractions().items()):
            if nodes is not None and node not in nodes:
                continue
            gpus = self.nodes.get(node)
            inputs = {key: sp for key, pod in pods.items() if (sp := sharing_pod(pod))}
            if not inputs:
                continue
            await self.swapper.converge_node(node, self.swap_of(node),
                                             gpus.memory_mib if gpus else 0, pods, inputs)
            if gpus is None or not self.enabled(node):
                await self._home(node, pods, inputs)  # off: every process on its own device
                continue
            claimed = self._claimed(node, gpus)
            devices = [GpuDevice(i, gpus.memory_mib, claimed=i in claimed)
                       for i in range(gpus.count)]
            placements = place(devices, inputs.values())
            moved = {m.key: m for m in moves(inputs.values(), placements)}
            for key, sp in sorted(inputs.items()):
                placement = placements[key]
                before = current_limit(pods[key], sp.limit_mib)
                if key not in moved and placement.memory_limit_mib == before:
                    continue
                if await self.kube.annotate(*key, placement_annotations(placement)) == "gone":
                    continue
                if key in moved:
                    move = moved[key]
                    MOVES.labels(move.reason).inc()
                    message = move_message(move, node, placement)
                    await self.kube.record_event(pods[key], MOVED_REASON, message)
                else:
                    if placement.memory_limit_mib < before:
                        BURST_LIMITS.inc()
                    message = limit_message(before, placement)
                    await self.kube.record_event(pods[key], LIMITED_REASON, message)
                log.info("pod %s/%s: %s", *key, message)

    async def _home(self, node: str, pods: Mapping[Key, dict[str, Any]],
                    inputs: Mapping[Key, SharingPod]) -> None:
        """The node-level scheduler is off for this node: a process it moved goes back to its
        own device with its own limit (nothing else is touched)."""
        for key, sp in sorted(inputs.items()):
            if sp.current == sp.home and current_limit(pods[key], sp.limit_mib) == sp.limit_mib:
                continue
            notes = placement_annotations(Placement(sp.home, sp.limit_mib))
            if await self.kube.annotate(*key, notes) == "patched":
                message = (f"the node-level scheduler is off for node {node}: GPU process back "
                           f"on device {sp.home} with its own GPU memory limit")
                await self.kube.record_event(pods[key], MOVED_REASON, message)
                MOVES.labels("consolidate").inc()
