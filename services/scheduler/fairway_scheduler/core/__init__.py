"""The scheduler's decision logic: pure, synchronous, deterministic; no I/O, no asyncio.

`allocate(ClusterSnapshot) -> CycleResult` is the fair-share scheduler: queues per (project,
node pool) under (department, node pool) with deserved / limit / over-quota weight, fair share
by water-filling (`fairshare`), the allocate action (`allocate`) over one session (`session`:
nodes, devices and queues of the cycle; `nodes`: placement and fractions; `reasons`: pending
sentences). `schedule(ClusterSnapshot)` is the walking skeleton's first fit, which the service
still calls until it feeds org units (`ClusterSnapshot.queues`) and switches to `allocate`.
The scenario simulator (`scenario`, `simulation`) and the benchmarks call `allocate`.
"""

from fairway_scheduler.core.allocate import allocate
from fairway_scheduler.core.disrupt import decide
from fairway_scheduler.core.first_fit import schedule
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import (
    Allocation,
    ClusterSnapshot,
    CycleResult,
    DisruptionSettings,
    Eviction,
    Node,
    NodePool,
    PendingCode,
    PendingReason,
    Placement,
    PodPlacement,
    QueueSpec,
    QueueStatus,
    Quota,
    ResourceStatus,
    Workload,
)

__all__ = [
    "Allocation",
    "ClusterSnapshot",
    "CycleResult",
    "DisruptionSettings",
    "Eviction",
    "Ledger",
    "Node",
    "NodePool",
    "PendingCode",
    "PendingReason",
    "Placement",
    "PodPlacement",
    "QueueSpec",
    "QueueStatus",
    "Quota",
    "ResourceStatus",
    "Workload",
    "allocate",
    "decide",
    "schedule",
]
