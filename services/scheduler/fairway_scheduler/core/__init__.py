"""The scheduler's decision logic: pure, synchronous, deterministic; no I/O, no asyncio.

`decide(ClusterSnapshot) -> CycleResult` is one cycle: the fair-share allocate action
(`allocate`: queues per (project, node pool) under (department, node pool) with deserved /
limit / over-quota weight, fair share by water-filling in `fairshare`), then the disruptive
actions (`disrupt`: consolidate, reclaim, preempt, stale-gang eviction), over one session
(`session`: nodes, devices and queues of the cycle; `nodes`: placement and fractions;
`reasons`: pending sentences). The service, the scenario simulator (`scenario`, `simulation`)
and the benchmarks all call `decide`; `allocate` alone is the allocate action.
"""

from fairway_scheduler.core.allocate import allocate
from fairway_scheduler.core.disrupt import decide
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
]
