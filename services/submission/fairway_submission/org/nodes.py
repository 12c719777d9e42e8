"""Route: the cluster's nodes (GET /api/v1/nodes) for `fairway top nodes`: each node's state
from the inventory lifecycle publishes (last message per node), with the GPUs the workload
view places on it and, per device, its pods and GPU memory (core/devices.py)."""

from typing import Any

from fastapi import APIRouter

from fairway_contracts.workloads import GPU_SWAP_LABEL
from fairway_submission import repository as repo
from fairway_submission.core.devices import device_views
from fairway_submission.core.errors import ApiError
from fairway_submission.dependencies import Caller, Submission
from fairway_submission.models import errors
from fairway_submission.org.models import NodeList

router = APIRouter(prefix="/api/v1", tags=["organisation"])


@router.get("/nodes", response_model=NodeList, responses=errors(401, 403, 503))
async def list_nodes(caller: Caller, service: Submission) -> dict[str, Any]:
    if not caller.rules:
        raise ApiError(403, f"{caller.subject} has no access rules")
    inventory = await service.peers.read_inventory()
    async with service.pool.acquire() as conn:
        placed = await repo.gpus_by_node(conn)
        pods = await repo.pods_on_nodes(conn)
    items = []
    for n in sorted(inventory, key=lambda n: n.name):
        devices = device_views(n.gpus, n.gpu_memory_mib, pods.get(n.name, []))
        items.append({
            "name": n.name, "nodePool": n.node_pool, "ready": n.ready,
            "gpus": n.gpus, "gpuProduct": n.gpu_product, "gpuMemoryMib": n.gpu_memory_mib,
            "allocatedGpus": placed.get(n.name, 0), "cpuMillis": n.cpu_millis,
            "memoryMib": n.memory_mib, "devices": devices,
            "gpuSwap": n.labels.get(GPU_SWAP_LABEL) == "true",
            "swapHostMemoryUsedMib": sum(d["memorySwappedMib"] for d in devices)})
    return {"nodes": items, "totalCount": len(items)}
