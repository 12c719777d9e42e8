"""A session's nodes and pool indexes kept with the ledger for the next cycle on the same nodes
(`framework.session.KeptRoom`), against the same made afresh: cycle after cycle on one kept
ledger, every node's state and every pool's sums and indexes as a session made on a ledger
built afresh from the snapshot has them, and the same decisions. The nodes made again are those
the ledger held or released pods on since, and those the last cycle took room on or gave it
back, whether it kept that or rolled it back."""

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    Node,
    NodePool,
    QueueSpec,
    Quota,
    Workload,
    decide,
)
from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.framework.session import KeptRoom
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.nodes import FULL, PoolNodes
from fairway_scheduler.core.swap import GpuSwap
from tests.scheduler.test_disruption_properties import contended
from tests.scheduler.test_disruption_walk import alike
from tests.scheduler.test_hold_index import T0, cycles_on_a_kept_ledger


def room(session: Session) -> dict:
    """Everything a session reads of its nodes and pools when it starts."""
    nodes = {name: (n.idx, n.pods, n.free_cpu, n.free_mem, list(n.used), list(n.fractions),
                    n.whole, n.bucket, n.partial_free)
             for name, n in session.nodes.items()}
    pools = {}
    for name, pool in session.pools.items():
        # a heap may keep entries of nodes that left its bucket (dropped when they reach its
        # top): what it answers is the nodes in the bucket, each there
        in_heaps = [sorted({i for i in heap if pool.by_idx[i].bucket == b})
                    for b, heap in enumerate(pool.heaps)]
        in_buckets = [sorted(n.idx for n in pool.gpu_nodes if n.bucket == b)
                      for b in range(len(pool.heaps))]
        assert in_heaps == in_buckets
        pools[name] = (pool.counts, pool.free_total, pool.free_nodes, pool.pods_full,
                       {free: sorted(idxs) for free, idxs in pool.partial.items()},
                       pool.version, pool._no_room, pool._same_as, pool._scan_from,
                       pool._host_order, pool.touched, [n.idx for n in pool.nodes])
    return {"nodes": nodes, "pools": pools}


def afresh(snapshot: ClusterSnapshot) -> dict:
    return room(Session(snapshot, Ledger.of(snapshot)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(alike(), contended()),
       st.lists(st.lists(st.integers(0, 40), max_size=3), min_size=2, max_size=5))
def test_a_kept_room_starts_each_cycle_as_one_made_afresh(snapshot, finishing):
    """Cycle after cycle on one ledger, kept as the service keeps it (bound pods held, evicted
    and finished ones released): each session starts with the nodes and pools a session on a
    ledger built afresh starts with, and decides as it does."""
    def starts_afresh(snapshot: ClusterSnapshot, ledger: Ledger) -> None:
        assert room(Session(snapshot, ledger)) == afresh(snapshot)

    ledger = cycles_on_a_kept_ledger(snapshot, finishing, starts_afresh)
    assert isinstance(ledger.room, KeptRoom)  # (kept all along: the same nodes and pools)


NODES = (Node("n1", "default", True, 4, None, 40960, cpu_millis=8000, memory_mib=32768),
         Node("n2", "default", True, 4, None, 40960, cpu_millis=8000, memory_mib=32768))
QUEUES = (QueueSpec("p", "project", "default", None, Quota(8, -1, 1)),)


def job(wid: str, gpus: int, portion: float | None = None) -> Workload:
    return Workload(id=wid, project="p", priority=50, submitted_at=T0, gpus_per_pod=gpus,
                    pods=1, min_pods=1, waiting_pods=(f"{wid}-0",), gpu_portion=portion,
                    cpu_millis=1000, memory_mib=1024)


def test_a_pod_the_ledger_released_frees_its_node_in_the_next_cycle():
    running = Allocation("r", "r-0", "n1", (0, 1, 2), cpu_millis=6000, memory_mib=1024)
    snapshot = ClusterSnapshot(nodes=NODES, pools=(NodePool("default"),), queues=QUEUES,
                               workloads=(replace(job("r", 3), waiting_pods=()),),
                               allocations=(running,))
    ledger = Ledger.of(snapshot)
    first = Session(snapshot, ledger)
    assert first.nodes["n1"].whole == 1 and first.nodes["n1"].free_cpu == 2000
    ledger.release("r", "r-0")  # it finished
    finished = replace(snapshot, workloads=(job("w", 4),), allocations=())
    second = Session(finished, ledger)
    assert second.nodes is first.nodes  # kept
    n1 = second.nodes["n1"]
    assert (n1.used, n1.whole, n1.free_cpu, n1.pods) == ([0, 0, 0, 0], 4, 8000, 0)
    assert second.pools["default"].counts[4] == 2
    assert room(second) == afresh(finished)
    # and the 4-GPU job binpacks onto n1, the first of two empty nodes, as afresh
    assert decide(finished, ledger) == decide(finished)


def test_a_cycle_decided_again_on_the_same_ledger_decides_the_same():
    """The room a cycle took (and gave back when it rolled an attempt back) is made again from
    the ledger for the next: deciding the same snapshot twice gives one answer."""
    snapshot = ClusterSnapshot(nodes=NODES, pools=(NodePool("default"),), queues=QUEUES,
                               workloads=(job("a", 2), job("b", 0, 0.5), job("c", 4),
                                          job("d", 4)))
    ledger = Ledger.of(snapshot)
    once = decide(snapshot, ledger)
    assert len(once.placements) == 3  # a and b on one node, c on the other; d waits
    assert sum(len(p.touched) for p in ledger.room.pools.values()) > 0
    assert decide(snapshot, ledger) == once == decide(snapshot)
    assert room(Session(snapshot, ledger)) == afresh(snapshot)


def test_nodes_or_pools_changed_make_the_room_again():
    snapshot = ClusterSnapshot(nodes=NODES, pools=(NodePool("default"),), queues=QUEUES)
    ledger = Ledger.of(snapshot)
    Session(snapshot, ledger)
    kept = ledger.room
    Session(replace(snapshot, workloads=(job("a", 1),)), ledger)
    assert ledger.room is kept
    spread = replace(snapshot, pools=(NodePool("default", "spread"),))
    assert Session(spread, ledger).pools["default"].gpu_strategy == "spread"
    assert ledger.room is not kept
    again = ledger.room
    fewer = replace(spread, nodes=NODES[:1])
    assert list(Session(fewer, ledger).nodes) == ["n1"]
    assert ledger.room is not again


def test_no_room_is_kept_where_gpu_memory_swap_is_on_or_two_nodes_share_a_name():
    swap = (replace(NODES[0], gpu_swap=True), NODES[1])
    pools = (NodePool("default", swap=GpuSwap(host_mib=65536)),)
    snapshot = ClusterSnapshot(nodes=swap, pools=pools, queues=QUEUES)
    ledger = Ledger.of(snapshot)
    Session(snapshot, ledger)
    assert ledger.room is None  # what swapping nodes hold is read from the allocations
    twice = ClusterSnapshot(nodes=(NODES[0], NODES[0]), pools=(NodePool("default"),))
    ledger = Ledger.of(twice)
    Session(twice, ledger)
    assert ledger.room is None


def test_a_kept_pools_heaps_are_made_again_once_stale_entries_outnumber_its_nodes():
    snapshot = ClusterSnapshot(nodes=NODES, pools=(NodePool("default"),), queues=QUEUES)
    pool: PoolNodes = Session(snapshot, Ledger.of(snapshot)).pools["default"]
    n1 = pool.by_idx[0]
    for _ in range(60):  # each take and give moves n1 between buckets: an entry each
        pool.give(pool.take(n1, (0,), FULL, 0, 0))
    assert sum(map(len, pool.heaps)) > 2 * len(pool.gpu_nodes) + 64
    assert pool.next_cycle() == {0}
    assert sorted(map(len, pool.heaps)) == [0, 0, 0, 0, 2]  # one entry per node
    assert (pool.version, pool.touched) == (0, set())
