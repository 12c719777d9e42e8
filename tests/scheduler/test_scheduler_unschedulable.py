"""Workloads that can never be placed as the cluster stands are marked `unschedulable` (the
service announces it; lifecycle refuses them) and do not count as requested; a workload that
only waits for a node to come back is not."""

from datetime import UTC, datetime, timedelta

from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    DisruptionSettings,
    Node,
    NodePool,
    PendingCode,
    QueueSpec,
    Quota,
    Workload,
    allocate,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUEUES = (QueueSpec("team-a", "project", "default", gpu=Quota(deserved=2)),
          QueueSpec("team-b", "project", "default", gpu=Quota(deserved=2)))


def wl(wid: str, gpus: int, pools: tuple[str, ...] = (), project: str = "team-a",
       waiting: int = 1, pods: int = 1) -> Workload:
    return Workload(wid, project, 50, T0, gpus, min_pods=1, pods=pods, node_pools=pools,
                    waiting_pods=tuple(f"{wid}-{i}" for i in range(pods - waiting, pods)))


def pending(snapshot: ClusterSnapshot) -> dict[str, tuple[PendingCode, str, bool]]:
    return {r.workload_id: (r.code, r.message, r.unschedulable)
            for r in allocate(snapshot).pending}


def test_a_pod_larger_than_every_node_is_unschedulable_and_not_requested():
    nodes = (Node("n1", "default", True, 4), Node("n2", "default", False, 8))
    snapshot = ClusterSnapshot(nodes, (wl("giant", 16), wl("b", 4, project="team-b"),
                                       wl("b2", 4, project="team-b")), queues=QUEUES)
    result = allocate(snapshot)
    reasons = {r.workload_id: r for r in result.pending}
    giant = reasons["giant"]
    assert (giant.code, giant.unschedulable) == (PendingCode.NO_SUCH_RESOURCE, True)
    assert giant.message == ("needs 16 GPUs per pod; no node in node pool default has that "
                             "much (the largest has 8 GPUs)")
    assert not reasons["b2"].unschedulable
    status = {q.name: q.gpu for q in result.queues if q.kind == "project"}
    assert status["team-a"].requested == 0  # its 16 GPUs would shift fair shares for nothing
    assert status["team-a"].fair_share == 0
    assert status["team-b"].fair_share == 4


def test_larger_than_the_ready_nodes_only_waits():
    """A node that could hold it is not ready: it waits for it, it is not refused."""
    nodes = (Node("n1", "default", True, 4), Node("n2", "default", False, 8))
    code, message, unschedulable = pending(ClusterSnapshot(nodes, (wl("w", 8),)))["w"]
    assert (code, unschedulable) == (PendingCode.NO_SUCH_RESOURCE, False)
    assert "no ready node" in message


def test_a_missing_or_empty_pool_is_unschedulable_a_pool_not_ready_is_not():
    nodes = (Node("n1", "default", True, 4), Node("x1", "down", False, 4))
    snapshot = ClusterSnapshot(nodes, (wl("missing", 1, ("gone",)), wl("empty", 1, ("empty",)),
                                       wl("down", 1, ("down",)), wl("both", 1, ("gone", "empty"))),
                               pools=(NodePool("empty"),))
    got = pending(snapshot)
    assert got["missing"] == (PendingCode.NODE_POOL_UNAVAILABLE,
                              "node pool gone does not exist", True)
    assert got["empty"] == (PendingCode.NODE_POOL_UNAVAILABLE, "node pool empty has no nodes",
                            True)
    assert got["both"][2] is True
    assert got["down"] == (PendingCode.NODE_POOL_UNAVAILABLE,
                           "node pool down has 1 node, none ready", False)


def test_one_pool_that_could_hold_it_is_enough():
    nodes = (Node("n1", "default", True, 4),)
    result = allocate(ClusterSnapshot(nodes, (wl("w", 2, ("gone", "default")),)))
    assert [p.workload_id for p in result.placements] == ["w"]
    assert not result.pending


def test_a_workload_holding_pods_is_never_unschedulable():
    """Its running pods are not refused because the node it runs on shrank."""
    nodes = (Node("n1", "default", True, 2),)
    snapshot = ClusterSnapshot(nodes, (wl("w", 4, pods=2, waiting=1),),
                               (Allocation("w", "w-0", "n1", (0, 1)),))
    [reason] = allocate(snapshot).pending
    assert (reason.code, reason.unschedulable) == (PendingCode.NO_SUCH_RESOURCE, False)


def test_nothing_is_unschedulable_before_the_inventory_reports_a_node():
    [reason] = allocate(ClusterSnapshot((), (wl("w", 1),))).pending
    assert (reason.code, reason.unschedulable) == (PendingCode.NODE_POOL_UNAVAILABLE, False)


def test_a_missing_pool_within_its_grace_waits_then_is_refused():
    """The pool may be on its way (the organisation's event racing the submission): within
    the grace the workload waits with the same reason; after it, it is refused."""
    nodes = (Node("n1", "default", True, 4),)
    workloads = (wl("missing", 1, ("gone",)), wl("empty", 1, ("empty",)))
    grace = DisruptionSettings(missing_pool_grace=60)
    for seconds, refused in ((0, False), (59, False), (60, True), (3600, True)):
        snapshot = ClusterSnapshot(nodes, workloads, pools=(NodePool("empty"),),
                                   now=T0 + timedelta(seconds=seconds), disruption=grace)
        got = pending(snapshot)
        assert got["missing"] == (PendingCode.NODE_POOL_UNAVAILABLE,
                                  "node pool gone does not exist", refused), seconds
        assert got["empty"] == (PendingCode.NODE_POOL_UNAVAILABLE,
                                "node pool empty has no nodes", refused), seconds
