"""The core's vocabulary: what a cycle sees (`ClusterSnapshot`) and what it decides (`CycleResult`).

Plain frozen values, no I/O types: the service shell, the simulator and the benchmarks build
snapshots from whatever they hold.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    pool: str
    ready: bool
    gpus: int
    gpu_product: str | None = None
    gpu_memory_mib: int | None = None
    cpu_millis: int = 0
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class Allocation:
    """GPUs one pod holds on a node.

    `unknown_devices` counts GPUs of a pod found bound without a decision of ours (its device
    indices unknown): that many of the node's lowest free devices count as taken.
    """

    workload_id: str
    pod: str
    node: str
    gpu_devices: tuple[int, ...] = ()
    unknown_devices: int = 0


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload the scheduler knows both the request and the pods of, and that is not over."""

    id: str
    project: str
    priority: int  # higher goes first
    submitted_at: datetime
    gpus_per_pod: int
    min_pods: int = 1  # the gang: this many pods start together or none does
    pods: int = 1
    node_pools: tuple[str, ...] = ()  # preference order; empty: every pool, `default` first
    preemptible: bool = True
    waiting_pods: tuple[str, ...] = ()  # pods with no node and no allocation


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    nodes: tuple[Node, ...] = ()
    workloads: tuple[Workload, ...] = ()
    allocations: tuple[Allocation, ...] = ()


@dataclass(frozen=True, slots=True)
class PodPlacement:
    pod: str
    node: str
    gpu_devices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    """Pods of one workload placed in this cycle."""

    workload_id: str
    pods: tuple[PodPlacement, ...]


class PendingCode(StrEnum):
    """Why a workload's pods still wait, as a machine reads it."""

    WAITING_FOR_PODS = "WaitingForPods"  # the gang's pods do not all exist yet
    NO_NODE_IN_POOLS = "NoNodeInPools"  # the requested pools have no nodes at all
    NO_READY_NODE = "NoReadyNode"  # they have nodes, none ready
    NO_NODE_LARGE_ENOUGH = "NoNodeLargeEnough"  # a pod asks for more GPUs than any node has
    NO_FITTING_NODE = "NoFittingNode"  # a node could hold the pod, none has that much free
    GANG_DOES_NOT_FIT = "GangDoesNotFit"  # the pods cannot all be placed together


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a workload's pods still wait, as a person reads it: numbers included."""

    workload_id: str
    code: PendingCode
    message: str


@dataclass(frozen=True, slots=True)
class CycleResult:
    placements: tuple[Placement, ...] = ()
    pending: tuple[PendingReason, ...] = ()
