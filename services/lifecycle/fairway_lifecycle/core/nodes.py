"""A Kubernetes node as the scheduler's inventory sees it (pure: the node's JSON in)."""

from datetime import datetime
from typing import Any

from fairway_contracts.events import NodeInventory
from fairway_contracts.quantities import cpu_millis, memory_mib

NODE_POOL_LABEL = "fairway.io/node-pool"


def node_inventory(node: dict[str, Any], observed_at: datetime,
                   deleted: bool = False) -> NodeInventory:
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
        cpu_millis=cpu_millis(allocatable.get("cpu")),
        memory_mib=memory_mib(allocatable.get("memory")),
        max_pods=int(allocatable.get("pods", 110)),
        labels=labels,
        deleted=deleted,
        observed_at=observed_at,
    )
