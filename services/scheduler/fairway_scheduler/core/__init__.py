"""The scheduler's decision logic: pure, synchronous, deterministic; no I/O, no asyncio.

`schedule(ClusterSnapshot) -> CycleResult` is the stable interface: the service shell, the
scenario simulator and the benchmarks all call it the same way. This is the first version, a
plain first fit over ready nodes (`first_fit`); the fair-share scheduler (queues per project
and node pool, quotas, over-quota weights, preemption, reclaim) will replace it behind the same
interface, so callers build the same snapshot and read the same result.
"""

from fairway_scheduler.core.first_fit import schedule
from fairway_scheduler.core.model import (
    Allocation,
    ClusterSnapshot,
    CycleResult,
    Node,
    PendingCode,
    PendingReason,
    Placement,
    PodPlacement,
    Workload,
)

__all__ = [
    "Allocation",
    "ClusterSnapshot",
    "CycleResult",
    "Node",
    "PendingCode",
    "PendingReason",
    "Placement",
    "PodPlacement",
    "Workload",
    "schedule",
]
