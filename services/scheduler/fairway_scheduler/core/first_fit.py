"""First fit, the first scheduling policy: whole GPUs, gangs all or nothing, pools in order.

Workloads are taken by priority value (highest first), then by submission time, then by id.
For each one the node pools are tried in its order of preference (no preference: every pool,
`default` first); within a pool the ready nodes are tried in name order, and each pod goes to
the first node with enough free GPUs, taking the lowest free device indices. The first
`min_pods` pods of a gang are placed together in one pool or not at all; pods beyond the gang
follow one by one into the same pool. A workload's pods never span pools. Whatever stays
waiting gets a reason with the numbers that explain it.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from fairway_scheduler.core.model import (
    ClusterSnapshot,
    CycleResult,
    Node,
    PendingCode,
    PendingReason,
    Placement,
    PodPlacement,
    Workload,
)

DEFAULT_POOL = "default"


def schedule(snapshot: ClusterSnapshot) -> CycleResult:
    cluster = _Cluster(snapshot)
    placements: list[Placement] = []
    pending: list[PendingReason] = []
    for workload in sorted(snapshot.workloads, key=_queue_order):
        if not workload.waiting_pods:
            continue
        placed, reason = _schedule_workload(workload, cluster)
        if placed:
            placements.append(Placement(workload.id, tuple(placed)))
        if reason is not None:
            pending.append(PendingReason(workload.id, reason[0], reason[1]))
    return CycleResult(tuple(placements), tuple(pending))


def _queue_order(workload: Workload):
    return (-workload.priority, workload.submitted_at, workload.id)


def _schedule_workload(workload: Workload, cluster: "_Cluster"
                       ) -> tuple[list[PodPlacement], tuple[PendingCode, str] | None]:
    waiting = sorted(workload.waiting_pods, key=_natural)
    held = cluster.held[workload.id]
    gang = max(0, workload.min_pods - held)  # pods that must start together in this cycle
    gpus = workload.gpus_per_pod
    if len(waiting) < gang:
        return [], (PendingCode.WAITING_FOR_PODS,
                    f"needs {_count(workload.min_pods, 'pod')} together; "
                    f"{held + len(waiting)} exist so far")

    pools = cluster.pools_for(workload)
    where = _pools_text(pools)
    nodes = [node for pool in pools for node in cluster.nodes_in(pool)]
    ready = [node for node in nodes if node.ready]
    if not nodes:
        return [], (PendingCode.NO_NODE_IN_POOLS, f"no node in {where}")
    if not ready:
        verb = "has" if len(pools) == 1 else "have"
        return [], (PendingCode.NO_READY_NODE,
                    f"{where} {verb} {_count(len(nodes), 'node')}, none ready")
    largest_node = max(node.gpus for node in ready)
    if gpus > largest_node:
        return [], (PendingCode.NO_NODE_LARGE_ENOUGH,
                    f"needs {_count(gpus, 'GPU')} per pod; the largest ready node in {where} "
                    f"has {_count(largest_node, 'GPU')}")

    largest_slot = cluster.largest_free_slot(ready)
    placed: list[PodPlacement] = []
    for pool in pools:
        placed = cluster.place_in_pool(pool, waiting, gang, gpus)
        if placed:
            break
    if not placed:
        if gang > 1:
            # max() keeps the first of equals: the most preferred pool is named.
            best, best_pool = max(((cluster.fit_count(pool, gang, gpus), pool) for pool in pools),
                                  key=lambda fit: fit[0])
            return [], (PendingCode.GANG_DOES_NOT_FIT,
                        f"{_needs(gang, gpus)} placed together; at most {best} fit in one "
                        f"node pool now (node pool {best_pool})")
        return [], (PendingCode.NO_FITTING_NODE,
                    f"{_needs(len(waiting), gpus, more=held > 0)}; the largest free slot in "
                    f"{where} has {_count(largest_slot, 'GPU')}")

    left = len(waiting) - len(placed)
    if not left:
        return placed, None
    return placed, (PendingCode.NO_FITTING_NODE,
                    f"{_needs(left, gpus, more=True)}; the largest free slot in {where} has "
                    f"{_count(cluster.largest_free_slot(ready), 'GPU')}")


class _Cluster:
    """Free GPU devices per node while a cycle places workloads one after another."""

    def __init__(self, snapshot: ClusterSnapshot):
        nodes = sorted(snapshot.nodes, key=lambda n: _natural(n.name))
        self.by_pool: dict[str, list[Node]] = {}
        for node in nodes:
            self.by_pool.setdefault(node.pool, []).append(node)
        pool_of = {node.name: node.pool for node in nodes}

        free = {node.name: set(range(node.gpus)) for node in nodes}
        allocations = sorted(snapshot.allocations, key=lambda a: (a.node, a.workload_id, a.pod))
        for allocation in allocations:
            if allocation.node in free:
                free[allocation.node].difference_update(allocation.gpu_devices)
        for allocation in allocations:
            if allocation.unknown_devices and allocation.node in free:
                taken = sorted(free[allocation.node])[:allocation.unknown_devices]
                free[allocation.node].difference_update(taken)
        self.free: dict[str, list[int]] = {name: sorted(devs) for name, devs in free.items()}

        self.held: Counter[str] = Counter(a.workload_id for a in allocations)
        # A workload that already holds pods stays in their pool.
        self.held_pool: dict[str, str] = {}
        for allocation in allocations:
            if allocation.node in pool_of:
                self.held_pool.setdefault(allocation.workload_id, pool_of[allocation.node])

    def nodes_in(self, pool: str) -> list[Node]:
        return self.by_pool.get(pool, [])

    def pools_for(self, workload: Workload) -> tuple[str, ...]:
        if workload.id in self.held_pool:
            return (self.held_pool[workload.id],)
        if workload.node_pools:
            return tuple(dict.fromkeys(workload.node_pools))
        return tuple(sorted(self.by_pool, key=lambda pool: (pool != DEFAULT_POOL, pool)))

    def largest_free_slot(self, nodes: Iterable[Node]) -> int:
        return max((len(self.free[node.name]) for node in nodes if node.ready), default=0)

    def fit_count(self, pool: str, pods: int, gpus: int) -> int:
        """How many pods of `gpus` GPUs each the pool's free GPUs could hold now, at most `pods`."""
        ready = [node for node in self.nodes_in(pool) if node.ready]
        if gpus == 0:
            return pods if ready else 0
        return min(pods, sum(len(self.free[node.name]) // gpus for node in ready))

    def place_in_pool(self, pool: str, pods: Sequence[str], gang: int, gpus: int
                      ) -> list[PodPlacement]:
        """First fit of `pods` in `pool`: the first `gang` all or none, the rest while they fit.
        Takes the devices it places on; places nothing when the gang does not fit."""
        ready = [node for node in self.nodes_in(pool) if node.ready]
        scratch = {node.name: list(self.free[node.name]) for node in ready}
        placed: list[PodPlacement] = []
        for index, pod in enumerate(pods):
            node = next((n for n in ready if len(scratch[n.name]) >= gpus), None)
            if node is None:
                if index < gang:
                    return []
                break  # the pods are alike: when one fits nowhere, the next will not either
            devices = tuple(scratch[node.name][:gpus])
            del scratch[node.name][:gpus]
            placed.append(PodPlacement(pod, node.name, devices))
        self.free.update(scratch)
        return placed


# words --------------------------------------------------------------------------------------

def _natural(name: str) -> tuple:
    """Sort key that puts gpu-2 before gpu-10; the name itself breaks ties (a01 vs a1)."""
    parts = tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
    return (parts, name)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _needs(pods: int, gpus: int, *, more: bool = False) -> str:
    what = _count(pods, "more pod" if more else "pod")
    each = " each" if pods > 1 else ""
    return f"needs {what} with {_count(gpus, 'GPU')}{each}"


def _pools_text(pools: Sequence[str]) -> str:
    if not pools:
        return "any node pool"
    if len(pools) == 1:
        return f"node pool {pools[0]}"
    return f"node pools {', '.join(pools)}"
