"""Route: the cluster's nodes (GET /api/v1/nodes) for `fairway top nodes`: each node's state
from the inventory lifecycle publishes (last message per node), with the GPUs the workload
view places on it."""

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fairway_contracts import streams, subjects
from fairway_contracts.events import NodeInventory
from fairway_submission import repository as repo
from fairway_submission.errors import ApiError

if TYPE_CHECKING:
    from fairway_submission.api import Context


async def read_inventory(ctx: "Context") -> list[NodeInventory]:
    """Every node's last inventory message, read with a short-lived consumer."""
    js = ctx.service.js
    sub = await js.pull_subscribe(
        subjects.INVENTORY_ALL, stream=streams.INVENTORY.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                              ack_policy=AckPolicy.NONE, inactive_threshold=10.0))
    nodes: dict[str, NodeInventory] = {}
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.5)
            except TimeoutError:
                break
            for msg in batch:
                node = NodeInventory.model_validate_json(msg.data)
                nodes[node.name] = node
            if batch and batch[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return [n for n in nodes.values() if not n.deleted]


def register(router: APIRouter, ctx: "Context", Caller: Any) -> None:
    @router.get("/nodes", tags=["organisation"])
    async def list_nodes(caller: Caller) -> dict[str, Any]:
        if not caller.rules:
            raise ApiError(403, f"{caller.subject} has no access rules")
        inventory = await ctx.read_inventory()
        async with ctx.pool.acquire() as conn:
            placed = await repo.gpus_by_node(conn)
        items = [{"name": n.name, "nodePool": n.node_pool, "ready": n.ready,
                  "gpus": n.gpus, "gpuProduct": n.gpu_product,
                  "allocatedGpus": placed.get(n.name, 0), "cpuMillis": n.cpu_millis,
                  "memoryMib": n.memory_mib} for n in sorted(inventory, key=lambda n: n.name)]
        return {"nodes": items, "totalCount": len(items)}
