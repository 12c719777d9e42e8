"""The scheduler's decision logic: pure, synchronous, deterministic; no I/O, no asyncio.

`decide(ClusterSnapshot) -> CycleResult` is one cycle (`cycle`): the actions (`actions/`:
allocate, consolidate, reclaim, preempt, stale-gang, the disruptive ones over one solver) in
order, on one session of the framework (`framework/`: the session, and the statement through
which an action places, evicts and pipelines, with checkpoint and rollback). Beneath them:
`nodes` (placement and fractions), `queues` and `fairshare` (queues per (project, node pool)
under (department, node pool), fair share by water-filling), `reasons` (pending sentences),
`ledger` (what running pods hold, kept between cycles). `cluster` is the service's state in
memory and the snapshots it makes of it. The service, the scenario simulator and the
benchmarks all call `decide`; `allocate` is the allocate action alone.
"""

from fairway_scheduler.core.actions.allocate import allocate
from fairway_scheduler.core.cycle import decide
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import (
    Allocation,
    ClusterSnapshot,
    CycleResult,
    DisruptionSettings,
    Eviction,
    Node,
    NodePool,
    Nomination,
    PendingCode,
    PendingReason,
    PendingReasons,
    Placement,
    PodPlacement,
    QueueSpec,
    QueueStatus,
    Quota,
    ResourceStatus,
    TimeAwareFairness,
    WaitReason,
    Workload,
    reasons_by_workload,
)
from fairway_scheduler.core.usage import UsageHistory

__all__ = [
    "Allocation",
    "ClusterSnapshot",
    "CycleResult",
    "DisruptionSettings",
    "Eviction",
    "Ledger",
    "Node",
    "NodePool",
    "Nomination",
    "PendingCode",
    "PendingReason",
    "PendingReasons",
    "Placement",
    "PodPlacement",
    "QueueSpec",
    "QueueStatus",
    "Quota",
    "ResourceStatus",
    "TimeAwareFairness",
    "UsageHistory",
    "WaitReason",
    "Workload",
    "allocate",
    "decide",
    "reasons_by_workload",
]
