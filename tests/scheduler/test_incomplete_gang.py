"""A gang whose pods do not all exist yet waits for them: no room is made for it."""

from datetime import UTC, datetime, timedelta

from fairway_scheduler.core import decide
from fairway_scheduler.core.model import (
    Allocation,
    ClusterSnapshot,
    Node,
    NodePool,
    PendingCode,
    Workload,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _snapshot(high_pods_existing: int) -> ClusterSnapshot:
    # One full 4-GPU node held by a low-priority preemptible job; a high-priority job of the
    # same project needs 4 pods of one GPU together, `high_pods_existing` of them created.
    low = Workload("low", "team", priority=10, submitted_at=NOW - timedelta(hours=1),
                   gpus_per_pod=1, min_pods=4, pods=4, started_at=NOW - timedelta(hours=1))
    high = Workload("high", "team", priority=100, submitted_at=NOW, gpus_per_pod=1,
                    min_pods=4, pods=4, preemptible=True,
                    waiting_pods=tuple(f"high-{i}" for i in range(high_pods_existing)))
    allocations = tuple(Allocation("low", f"low-{i}", "node-1", (i,)) for i in range(4))
    return ClusterSnapshot((Node("node-1", "default", True, 4),), (low, high), allocations,
                           (NodePool("default"),), now=NOW)


def test_an_incomplete_gang_waits_for_its_pods_and_nothing_is_preempted():
    result = decide(_snapshot(high_pods_existing=2))
    assert list(result.evictions) == []
    assert [p.code for p in result.pending if p.workload_id == "high"] == [
        PendingCode.WAITING_FOR_PODS]


def test_once_every_pod_exists_the_gang_preempts_the_lower_priority_job():
    result = decide(_snapshot(high_pods_existing=4))
    assert [(e.workload_id, e.reason) for e in result.evictions] == [("low", "preempt")]


def test_a_gang_none_of_whose_pods_exist_yet_has_no_pending_reason():
    # Lifecycle has not made its pods yet (its phase, Creating, says so): nothing to place
    # and nothing to say. Under a burst, when lifecycle runs behind the scheduler, a reason
    # here would be set and withdrawn moments later for most workloads.
    result = decide(_snapshot(high_pods_existing=0))
    assert list(result.evictions) == []
    assert [p for p in result.pending if p.workload_id == "high"] == []
    assert not [p for p in result.placements if p.workload_id == "high"]
