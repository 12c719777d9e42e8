"""GPU memory swap, acting: on the swap-capable nodes (label fairway.io/gpu-swap=true) of pools
with `swapEnabled`, it writes on each single-device fraction how much of its GPU memory is
swapped out to host memory (core/swap.py decides, per device: the active ones in memory, idle
ones out when the device is oversubscribed), records a Kubernetes Event for every swap out and
in, and counts the bytes. The node honours the annotation (kubesim does; on a real cluster the
GPU interposer's swap agent does — docs/architecture.md, "GPU memory swap").

It runs beside the node-level scheduler, on the same inputs (the fraction pods of each node and
where their GPU processes run), which is why the node-level scheduler's loop calls it.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from fairway_contracts.events import NodePoolChanged
from fairway_lifecycle.core.nodelevel import SharingPod
from fairway_lifecycle.core.swap import (
    ANN_SWAPPED,
    SWAPPED_IN_REASON,
    SWAPPED_OUT_REASON,
    SwapPod,
    change_message,
    changes,
    host_used_mib,
    swap_pod,
    swapped,
)
from fairway_lifecycle.kube import Kube

log = logging.getLogger("fairway.lifecycle.gpuswap")

MIB = 1 << 20
SWAP_BYTES = Counter("fairway_lifecycle_gpu_swap_bytes_total",
                     "GPU memory of fractions swapped out to host memory (direction out) and "
                     "back in to their device (direction in), in bytes", ["direction"])
SWAP_HOST_BYTES = Gauge("fairway_lifecycle_gpu_swap_host_memory_bytes",
                        "Host memory holding swapped-out GPU memory per node, in bytes "
                        "(by request)", ["node"])

Key = tuple[str, str]


@dataclass(frozen=True)
class PoolSwap:
    host_mib: int  # cpuSwapMemorySize
    reserved_mib: int  # reservedGpuMemoryForSwapOperations, per device


def pool_swap(event: NodePoolChanged) -> PoolSwap | None:
    if not event.swap_enabled or event.cpu_swap_memory_mib <= 0:
        return None
    return PoolSwap(event.cpu_swap_memory_mib, event.reserved_gpu_memory_for_swap_mib)


class GpuSwapper:
    def __init__(self, kube: Kube):
        self.kube = kube
        # what this process last wrote per pod: the pod watch may not have brought the write
        # back yet when the node is looked at again
        self.written: dict[Key, int] = {}
        self.nodes: dict[str, set[Key]] = {}
        self.gauged: set[str] = set()  # nodes with a host memory gauge

    async def converge_node(self, node: str, swap: PoolSwap | None, device_mib: int,
                            pods: Mapping[Key, dict[str, Any]],
                            inputs: Mapping[Key, SharingPod]) -> None:
        """Swap the node's fractions out and in as the decision says (swap off, or not a
        swap-capable node: everything swapped out comes back in)."""
        for gone in self.nodes.get(node, set()) - set(pods):
            self.written.pop(gone, None)
        self.nodes[node] = set(pods)
        now = []
        for key, sp in inputs.items():
            p = swap_pod(pods[key], sp.current, sp.request_mib)
            said = (pods[key]["metadata"].get("annotations") or {}).get(ANN_SWAPPED)
            if key in self.written and said == str(self.written[key]):
                del self.written[key]  # the watch caught up with what was written
            elif key in self.written:
                p = SwapPod(p.key, p.device, p.request_mib, p.active, self.written[key])
            now.append(p)
        if swap is None or not device_mib:
            decided = {p.key: 0 for p in now}
        else:
            decided = swapped(device_mib, swap.reserved_mib, now)
        by_key = {p.key: p for p in now}
        if swap is not None:
            # every fraction it manages says so (0: all in memory), once: its views follow
            # its swaps and activity from then on
            for key in sorted(inputs):
                notes = pods[key]["metadata"].get("annotations") or {}
                if ANN_SWAPPED not in notes and key not in self.written and not decided[key]:
                    if await self.kube.annotate(*key, {ANN_SWAPPED: "0"}) == "patched":
                        self.written[key] = 0
        for change in changes(now, decided):
            key = change.key
            after = decided[key]
            if await self.kube.annotate(*key, {ANN_SWAPPED: str(after)}) == "gone":
                self.written.pop(key, None)
                continue
            self.written[key] = after
            SWAP_BYTES.labels(change.direction).inc(change.mib * MIB)
            message = change_message(change, node, by_key[key].device)
            if swap is None and change.direction == "in":
                message += " (swap is off for this node)"
            await self.kube.record_event(
                pods[key], SWAPPED_OUT_REASON if change.direction == "out"
                else SWAPPED_IN_REASON, message)
            log.info("pod %s/%s: %s", *key, message)
        if swap is not None:
            SWAP_HOST_BYTES.labels(node).set(host_used_mib(decided) * MIB)
        elif node in self.gauged:
            SWAP_HOST_BYTES.remove(node)
        (self.gauged.add if swap is not None else self.gauged.discard)(node)
