"""Pods per node: a node takes no more pods than its `max_pods` (the kubelet refuses the rest),
counting running pods (snapshot allocations or a kept ledger) and this cycle's placements."""

from datetime import UTC, datetime

from fairway_scheduler import core
from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    Ledger,
    Node,
    PendingCode,
    Workload,
    allocate,
)
from fairway_scheduler.core.cluster import ClusterState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cpu_workload(wid: str, pods: int = 1, min_pods: int = 1, waiting: int | None = None,
                 gpus: int = 0) -> Workload:
    waiting = pods if waiting is None else waiting
    return Workload(wid, "team-a", 50, T0, gpus, min_pods=min_pods, pods=pods,
                    waiting_pods=tuple(f"{wid}-{i}" for i in range(pods - waiting, pods)),
                    cpu_millis=100)


def pods_per_node(result) -> dict[str, int]:
    out: dict[str, int] = {}
    for placement in result.placements:
        for pod in placement.pods:
            out[pod.node] = out.get(pod.node, 0) + 1
    return out


def test_the_default_is_the_kubelets_110():
    assert Node("n1", "default", True, 0).max_pods == 110


def test_cpu_only_pods_spill_to_the_next_node_at_max_pods():
    nodes = (Node("n1", "default", True, 0, max_pods=3), Node("n2", "default", True, 0,
                                                               max_pods=3))
    result = allocate(ClusterSnapshot(nodes, (cpu_workload("w", pods=5),)))
    assert pods_per_node(result) == {"n1": 3, "n2": 2}
    assert not result.pending


def test_running_pods_count_and_a_kept_ledger_agrees():
    nodes = (Node("n1", "default", True, 0, max_pods=2), Node("n2", "default", True, 0,
                                                               max_pods=2))
    running = cpu_workload("r", pods=3, waiting=0)
    allocations = tuple(Allocation("r", f"r-{i}", node, cpu_millis=100)
                        for i, node in enumerate(("n1", "n1", "n2")))
    waiting = cpu_workload("w", pods=2)
    snapshot = ClusterSnapshot(nodes, (running, waiting), allocations)
    result = allocate(snapshot)
    assert pods_per_node(result) == {"n2": 1}
    [reason] = result.pending
    assert reason.code == PendingCode.NO_FITTING_NODE
    assert reason.message == (
        "needs 1 more pod with no GPU and 100 millicores; no node in node pool default has "
        "room for another pod: 2 nodes already run their maximum of 2 pods each and could "
        "hold it otherwise")
    ledger = Ledger(nodes)
    for a in allocations:
        ledger.hold(a, "team-a")
    assert ledger.pods == {"n1": 2, "n2": 1}
    assert allocate(ClusterSnapshot(nodes, (waiting,)), ledger) == result
    ledger.release("r", "r-0")
    assert ledger.pods == {"n1": 1, "n2": 1}
    assert pods_per_node(allocate(ClusterSnapshot(nodes, (waiting,)), ledger)) == {
        "n1": 1, "n2": 1}


def test_a_gpu_pod_waits_for_a_pod_slot_with_the_numbers():
    nodes = (Node("g1", "default", True, 8, max_pods=1),)
    allocations = (Allocation("c", "c-0", "g1", cpu_millis=100),)
    snapshot = ClusterSnapshot(nodes, (cpu_workload("c", waiting=0),
                                       Workload("t", "team-a", 50, T0, 4, waiting_pods=("t-0",))),
                               allocations)
    [reason] = allocate(snapshot).pending
    assert (reason.code, reason.message) == (
        PendingCode.NO_FITTING_NODE,
        "needs 1 pod with 4 GPUs; no node in node pool default has room for another pod: 1 "
        "node already runs its maximum of 1 pod and could hold it otherwise")


def test_a_gang_beyond_the_pod_slots_places_nothing_and_says_so():
    nodes = (Node("n1", "default", True, 0, max_pods=2),)
    result = allocate(ClusterSnapshot(nodes, (cpu_workload("g", pods=3, min_pods=3),)))
    assert not result.placements
    [reason] = result.pending
    assert reason.code == PendingCode.GANG_UNSCHEDULABLE
    assert reason.message == (
        "needs 3 pods with no GPU and 100 millicores each placed together; at most 2 fit in "
        "node pool default now (0 GPUs free on 0 nodes; its nodes may run 2 more pods in all)")


def test_the_service_carries_max_pods_into_the_snapshot():
    state = ClusterState()
    node = core.Node("n1", "default", True, 0)
    state.put_node(node, {}, 7)
    [snap_node] = state.snapshot().nodes
    assert snap_node.max_pods == 7
    assert state.same_node(node, {}, 7)
    assert not state.same_node(node, {}, 8)


def half_gpu(wid: str, waiting: int = 1, pods: int = 1) -> Workload:
    return Workload(wid, "team-a", 50, T0, 1, pods=pods, min_pods=1, gpu_portion=0.5,
                    waiting_pods=tuple(f"{wid}-{i}" for i in range(pods - waiting, pods)))


def test_a_fraction_on_a_device_takes_a_slot_for_its_reservation_pod_too():
    """Lifecycle makes one reservation pod per device holding fractions, and the kubelet
    counts it: a node of 3 slots takes a half GPU (pod + reservation) and a second half on the
    same device (no new reservation), but not a third pod that needs another device."""
    nodes = (Node("g1", "default", True, 2, max_pods=3), Node("g2", "default", True, 2,
                                                               max_pods=3))
    result = allocate(ClusterSnapshot(nodes, (half_gpu("a", pods=4, waiting=4),)))
    assert pods_per_node(result) == {"g1": 2, "g2": 2}  # 2 fractions + 1 reservation each
    running = half_gpu("r", waiting=0, pods=2)
    allocations = (Allocation("r", "r-0", "g1", gpu_devices=(0,), portion=0.5),
                   Allocation("r", "r-1", "g1", gpu_devices=(1,), portion=0.5))
    whole = Workload("c", "team-a", 50, T0, 0, waiting_pods=("c-0",), cpu_millis=100)
    # g1: 2 fraction pods on 2 devices + 2 reservation pods = 4 > 3; a CPU pod goes to g2
    snapshot = ClusterSnapshot(nodes, (running, whole), allocations)
    assert pods_per_node(allocate(snapshot)) == {"g2": 1}
    ledger = Ledger(nodes)
    for a in allocations:
        ledger.hold(a, "team-a")
    assert ledger.reservations("g1") == 2
    assert allocate(ClusterSnapshot(nodes, (whole,)), ledger) == allocate(snapshot)
    ledger.release("r", "r-1")
    assert ledger.reservations("g1") == 1
    # g1 now: 1 fraction pod + 1 reservation = 2 of 3: one CPU pod fits again
    assert pods_per_node(allocate(ClusterSnapshot(nodes, (whole,)), ledger)) == {"g1": 1}
