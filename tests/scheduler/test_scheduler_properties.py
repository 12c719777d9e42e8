"""Properties of the fair-share core over random clusters, organisations and workloads:
nothing over-committed (devices, CPU, memory, pods per node), limits and non-preemptible
quotas honoured, gangs all or nothing, fair shares within capacity, the same answer for the
same input in any order."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

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
    allocate,
)
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import PodSize

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POOLS = ("default", "p1")
EPS = 1e-9
MASTERS = (None, None, None, PodSize(0, cpu_millis=500, memory_mib=1024), PodSize(1),
           PodSize(4, cpu_millis=8000), PodSize(8, memory_mib=4096))


@st.composite
def quotas(draw) -> Quota:
    deserved = draw(st.sampled_from([0, 1, 2, 4, 8]))
    limit = draw(st.sampled_from([-1, -1, deserved, deserved + 2, deserved + 8]))
    return Quota(deserved, limit, draw(st.sampled_from([0, 1, 2, 3])))


@st.composite
def snapshots(draw) -> ClusterSnapshot:
    nodes = tuple(
        Node(f"n{i}", draw(st.sampled_from(POOLS)), draw(st.booleans()) or i == 0,
             draw(st.sampled_from([0, 1, 2, 4, 8])), None, 40960,
             draw(st.sampled_from([0, 16000])), draw(st.sampled_from([0, 65536])),
             max_pods=draw(st.sampled_from([110, 110, 0, 1, 2, 3])))
        for i in range(draw(st.integers(1, 6))))
    departments = [f"d{i}" for i in range(draw(st.integers(0, 2)))]
    projects = {f"t{i}": draw(st.sampled_from([None, *departments]))
                for i in range(draw(st.integers(1, 4)))}
    queues = [QueueSpec(d, "department", pool, None, draw(quotas()))
              for d in departments for pool in POOLS]
    queues += [QueueSpec(p, "project", pool, parent, draw(quotas()))
               for p, parent in projects.items() for pool in POOLS]
    workloads = []
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["whole", "whole", "portion", "memory", "cpu"]))
        pods = draw(st.integers(1, 4))
        # a distributed master sized apart: a launcher of no GPU, or less or more than a worker
        master = draw(st.sampled_from(MASTERS)) if pods > 1 else None
        workloads.append(Workload(
            id=f"w{i}", project=draw(st.sampled_from(sorted(projects))),
            priority=draw(st.sampled_from([25, 50, 100, 125])),
            submitted_at=T0 + timedelta(seconds=draw(st.integers(0, 3))),
            gpus_per_pod=(draw(st.sampled_from([1, 2, 4, 8])) if kind == "whole"
                          else draw(st.sampled_from([1, 2])) if kind in ("portion", "memory")
                          else 0),
            pods=pods, min_pods=draw(st.integers(1, pods)),
            node_pools=tuple(draw(st.permutations(POOLS))[:draw(st.integers(0, 2))]),
            preemptible=draw(st.booleans()),
            waiting_pods=tuple(f"w{i}-{j}" for j in range(pods)),
            gpu_portion=draw(st.sampled_from([0.25, 0.5, 0.75])) if kind == "portion" else None,
            gpu_memory_mib=draw(st.sampled_from([10240, 20480])) if kind == "memory" else None,
            cpu_millis=draw(st.sampled_from([0, 1000, 8000])),
            memory_mib=draw(st.sampled_from([0, 4096])),
            master=master, master_pod=f"w{i}-0" if master is not None else None,
        ))
    return ClusterSnapshot(nodes, tuple(workloads), (), (NodePool("default"),
                           NodePool("p1", "spread", "spread")), tuple(queues))


def size_of(w: Workload, pod: str) -> Workload | PodSize:
    """What the pod asks for: the master's own size, or the workload's per pod."""
    return w.master if w.master is not None and pod == w.master_pod else w


def second_cycle(snapshot: ClusterSnapshot) -> ClusterSnapshot:
    """The first cycle's placements held, every workload's unplaced pods waiting again."""
    first = allocate(snapshot)
    by_id = {w.id: w for w in snapshot.workloads}
    allocations, placed = [], defaultdict(set)
    for p in first.placements:
        w = by_id[p.workload_id]
        for pod in p.pods:
            placed[w.id].add(pod.pod)
            allocations.append(Allocation(w.id, pod.pod, pod.node, pod.gpu_devices,
                                          portion=pod.portion, gpu_memory_mib=pod.gpu_memory_mib,
                                          cpu_millis=size_of(w, pod.pod).cpu_millis,
                                          memory_mib=size_of(w, pod.pod).memory_mib))
    workloads = tuple(
        Workload(**{**{f: getattr(w, f) for f in w.__slots__},
                    "waiting_pods": tuple(p for p in w.waiting_pods if p not in placed[w.id])})
        for w in snapshot.workloads)
    return ClusterSnapshot(snapshot.nodes, workloads, tuple(allocations), snapshot.pools,
                           snapshot.queues)


def check_invariants(snapshot: ClusterSnapshot) -> None:
    result = allocate(snapshot)
    nodes = {n.name: n for n in snapshot.nodes}
    by_id = {w.id: w for w in snapshot.workloads}
    device = defaultdict(float)
    whole = defaultdict(int)
    cpu = defaultdict(int)
    mem = defaultdict(int)
    pods = defaultdict(int)

    def take(node, devices, portion, workload):
        pods[node] += 1
        for d in devices:
            assert d < nodes[node].gpus
            if portion is None:
                whole[(node, d)] += 1
                device[(node, d)] += 1
            else:
                device[(node, d)] += portion
        cpu[node] += workload.cpu_millis
        mem[node] += workload.memory_mib

    for a in snapshot.allocations:
        take(a.node, a.gpu_devices, a.portion, size_of(by_id[a.workload_id], a.pod))
    held = defaultdict(int)
    for a in snapshot.allocations:
        held[a.workload_id] += 1
    for p in result.placements:
        w = by_id[p.workload_id]
        # gangs: all of the gang or nothing
        assert len(p.pods) >= w.min_pods - held[w.id]
        assert len({nodes[pod.node].pool for pod in p.pods}) == 1
        for pod in p.pods:
            assert nodes[pod.node].ready
            assert len(pod.gpu_devices) == size_of(w, pod.pod).gpus_per_pod
            take(pod.node, pod.gpu_devices, pod.portion, size_of(w, pod.pod))
    for key, used in device.items():
        assert used <= 1 + EPS, ("device over-committed", key, used)
        assert whole[key] <= 1
        assert not whole[key] or used <= 1 + EPS
    for name, n in nodes.items():
        assert not n.cpu_millis or cpu[name] <= n.cpu_millis
        assert not n.memory_mib or mem[name] <= n.memory_mib
        assert pods[name] <= n.max_pods, ("pods over the node's maximum", name, pods[name])
    # queues
    capacity = defaultdict(float)
    for n in snapshot.nodes:
        if n.ready:
            capacity[n.pool] += n.gpus
    top = defaultdict(float)
    children = defaultdict(float)
    fair = {}
    for q in result.queues:
        g = q.gpu
        if g.limit >= 0:
            assert g.allocated <= g.limit + EPS, ("over limit", q)
        assert g.allocated_non_preemptible <= g.deserved + EPS, ("non-preemptible", q)
        fair[(q.kind, q.name, q.pool)] = g.fair_share
        if q.parent is None:
            top[q.pool] += g.fair_share
        else:
            children[(q.parent, q.pool)] += g.fair_share
    for pool, total in top.items():
        assert total <= capacity[pool] + EPS, ("fair shares above capacity", pool)
    for (department, pool), total in children.items():
        assert total <= fair[("department", department, pool)] + EPS


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(snapshots())
def test_invariants_from_empty(snapshot):
    check_invariants(snapshot)


@SETTINGS
@given(snapshots())
def test_invariants_with_running_workloads(snapshot):
    check_invariants(second_cycle(snapshot))


@SETTINGS
@given(snapshots(), st.randoms(use_true_random=False))
def test_determinism_in_any_input_order(snapshot, rng: random.Random):
    snapshot = second_cycle(snapshot)
    reference = allocate(snapshot)
    for _ in range(3):
        shuffled = ClusterSnapshot(*(tuple(rng.sample(items, len(items))) for items in (
            snapshot.nodes, snapshot.workloads, snapshot.allocations, snapshot.pools,
            snapshot.queues)))
        assert allocate(shuffled) == reference


@SETTINGS
@given(snapshots())
def test_a_ledger_kept_between_cycles_gives_the_same_answer(snapshot):
    """The service path (allocations held in a Ledger as they happen, only waiting workloads
    in the snapshot) decides exactly what the plain path decides."""
    snapshot = second_cycle(snapshot)
    by_id = {w.id: w for w in snapshot.workloads}
    ledger = Ledger(snapshot.nodes)
    for a in snapshot.allocations:
        ledger.hold(a, by_id[a.workload_id].project, by_id[a.workload_id].preemptible)
    waiting = tuple(w for w in snapshot.workloads if w.waiting_pods)
    lean = ClusterSnapshot(snapshot.nodes, waiting, (), snapshot.pools, snapshot.queues)
    assert allocate(lean, ledger) == allocate(snapshot)
    # releasing and holding again leaves it as it was
    for a in snapshot.allocations:
        ledger.release(a.workload_id, a.pod)
    assert allocate(lean, ledger) == allocate(
        ClusterSnapshot(snapshot.nodes, waiting, (), snapshot.pools, snapshot.queues))
