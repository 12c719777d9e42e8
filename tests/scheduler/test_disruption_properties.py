"""Properties of the disruptive actions (reclaim, preempt, consolidate, stale gangs) over random
clusters: a decision never evicts a non-preemptible workload for another one, never leaves its
preemptor unplaced, never evicts more than needed by more than one workload, never
over-commits a device; and a cluster run round after round settles (no oscillation)."""

from collections import defaultdict
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
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
    decide,
)
from fairway_scheduler.core.model import PodSize
from tests.scheduler.test_scheduler_properties import T0

EPS = 1e-9
NOW = T0 + timedelta(hours=1)
MASTERS = (None, None, None, PodSize(0), PodSize(1), PodSize(4))


@st.composite
def contended(draw) -> ClusterSnapshot:
    """Running work (placed by a first cycle, long ago) and new pending work after it."""
    nodes = tuple(Node(f"n{i}", "default", True, draw(st.sampled_from([2, 4, 8])), None, 40960)
                  for i in range(draw(st.integers(1, 4))))
    projects = [f"t{i}" for i in range(draw(st.integers(2, 3)))]
    departments = draw(st.sampled_from([None, "d0"]))
    queues = tuple(QueueSpec(p, "project", "default",
                             departments if departments and i % 2 else None,
                             Quota(draw(st.sampled_from([0, 1, 2, 4])),
                                   draw(st.sampled_from([-1, -1, 6])),
                                   draw(st.sampled_from([1, 2]))))
                   for i, p in enumerate(projects))

    def workloads(prefix: str, count: int, at: int) -> list[Workload]:
        out = []
        for i in range(count):
            pods = draw(st.integers(1, 3))
            # a distributed master sized apart (a launcher of no GPU, or another size)
            master = draw(st.sampled_from(MASTERS)) if pods > 1 else None
            out.append(Workload(
                id=f"{prefix}{i}", project=draw(st.sampled_from(projects)),
                priority=draw(st.sampled_from([25, 50, 100])),
                submitted_at=T0 + timedelta(seconds=at + i),
                gpus_per_pod=draw(st.sampled_from([1, 1, 2, 4])), pods=pods,
                min_pods=draw(st.integers(1, pods)), preemptible=draw(st.booleans()),
                waiting_pods=tuple(f"{prefix}{i}-{j}" for j in range(pods)),
                master=master, master_pod=f"{prefix}{i}-0" if master is not None else None))
        return out

    first = workloads("r", draw(st.integers(1, 10)), 0)
    result = allocate(ClusterSnapshot(nodes, tuple(first), (), (NodePool("default"),), queues))
    placed = {p.workload_id: p for p in result.placements}
    running, allocations = [], []
    for w in first:
        p = placed.get(w.id)
        if p is None:
            continue  # never started: leave it out
        names = {pod.pod for pod in p.pods}
        running.append(Workload(**{**{f: getattr(w, f) for f in w.__slots__},
                                   "waiting_pods": tuple(x for x in w.waiting_pods
                                                         if x not in names),
                                   "started_at": T0}))
        allocations += [Allocation(w.id, pod.pod, pod.node, pod.gpu_devices) for pod in p.pods]
    pending = workloads("p", draw(st.integers(1, 6)), 100)
    return ClusterSnapshot(nodes, tuple(running + pending), tuple(allocations),
                           (NodePool("default"),), queues, now=NOW)


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _elastic_moved_in_two_steps() -> ClusterSnapshot:
    """Found by this property: an elastic workload (3 pods, minimum 1) whose two pods above
    the minimum are moved aside one after the other keeps its first pod where it is; the
    decision named all three as moved."""
    nodes = tuple(Node(f"n{i}", "default", True, gpus, None, 40960)
                  for i, gpus in enumerate((2, 2, 4, 4)))
    run = {"started_at": T0}

    def w(wid, project, priority, at, gpus, pods, min_pods=1, waiting=(), **more):
        return Workload(wid, project, priority, T0 + timedelta(seconds=at), gpus,
                        min_pods=min_pods, pods=pods, waiting_pods=waiting, **more)
    workloads = (
        w("r1", "t1", 25, 1, 1, 3, **run), w("r2", "t0", 25, 2, 1, 1, **run),
        w("r3", "t0", 25, 3, 1, 1, **run), w("r4", "t1", 25, 4, 4, 1, **run),
        w("p0", "t1", 50, 100, 1, 3, 3, ("p0-0", "p0-1", "p0-2")),
        w("p1", "t0", 25, 101, 1, 3, 1, ("p1-0", "p1-1", "p1-2")))
    allocations = (Allocation("r1", "r1-0", "n0", (0,)), Allocation("r1", "r1-1", "n1", (1,)),
                   Allocation("r1", "r1-2", "n3", (0,)), Allocation("r2", "r2-0", "n0", (1,)),
                   Allocation("r3", "r3-0", "n1", (0,)),
                   Allocation("r4", "r4-0", "n2", (0, 1, 2, 3)))
    queues = tuple(QueueSpec(p, "project", "default", None, Quota(0, -1, 1))
                   for p in ("t0", "t1"))
    return ClusterSnapshot(nodes, workloads, allocations, (NodePool("default"),), queues,
                           now=NOW)


@SETTINGS
@given(contended())
@example(_elastic_moved_in_two_steps())
def test_disruptive_decisions_keep_their_promises(snapshot):
    result = decide(snapshot)
    by_id = {w.id: w for w in snapshot.workloads}
    nodes = {n.name: n for n in snapshot.nodes}
    placements = {p.workload_id: p for p in result.placements}
    evicted: dict[str, set[str]] = defaultdict(set)
    for e in result.evictions:
        held = {a.pod for a in snapshot.allocations if a.workload_id == e.workload_id}
        evicted[e.workload_id] |= held if e.pods is None else set(e.pods)
        if e.reason != "stale-gang":
            assert by_id[e.workload_id].preemptible, ("evicted a non-preemptible workload", e)
            # the preemptor is placed in the same decision
            assert e.by in placements, ("evicted for a workload left unplaced", e)
        if e.reason == "consolidate":
            # every pod it moves (all of them, or those named) is placed again
            moved = placements[e.workload_id]
            gone = held if e.pods is None else set(e.pods)
            assert moved.moved and gone <= {p.pod for p in moved.pods}, ("a moved pod was lost",
                                                                        e)
    # Never more than needed by more than one workload: every victim of a preemptor but at
    # most one gave room (a device) that the preemptor now uses, or counted against a limit of
    # the preemptor's own project.
    for preemptor in {e.by for e in result.evictions if e.by and e.reason != "consolidate"}:
        used = {(pod.node, d) for pod in placements[preemptor].pods for d in pod.gpu_devices}
        useless = 0
        for e in result.evictions:
            if e.by != preemptor:
                continue
            gave = {(a.node, d) for a in snapshot.allocations
                    if a.workload_id == e.workload_id and (e.pods is None or a.pod in e.pods)
                    for d in a.gpu_devices}
            same_project = by_id[e.workload_id].project == by_id[preemptor].project
            if not gave & used and not same_project:
                useless += 1
        assert useless <= 1, ("evicted more than needed", preemptor, result.evictions)
    # Nothing over-committed once the evicted pods are gone and the placements bound: each
    # device holds at most 1000 milli-GPUs (a whole pod takes them all, a fraction its part).
    device: dict[tuple[str, int], int] = defaultdict(int)
    for a in snapshot.allocations:
        if a.pod not in evicted[a.workload_id]:
            for d in a.gpu_devices:
                device[(a.node, d)] += _milli(a.portion)
    for p in result.placements:
        for pod in p.pods:
            for d in pod.gpu_devices:
                assert d < nodes[pod.node].gpus
                device[(pod.node, d)] += _milli(pod.portion)
    assert all(n <= 1000 for n in device.values()), device


def _milli(portion: float | None) -> int:
    return 1000 if portion is None else round(portion * 1000)


def run_rounds(snapshot: ClusterSnapshot, rounds: int) -> list[int]:
    """Rounds of `decide` with instant evictions and binds; decisions per round."""
    return play(snapshot, rounds)[0]


def play(snapshot: ClusterSnapshot, rounds: int, *, pipelined_later: bool = False
         ) -> tuple[list[int], ClusterSnapshot]:
    """Rounds of `decide` with instant evictions; decisions per round and the last state.
    Binds are instant too, or (`pipelined_later`, as the service does) a placement onto room
    being vacated is not bound in its round: the next round's nominations place it."""
    workloads = {w.id: w for w in snapshot.workloads}
    allocations = {(a.workload_id, a.pod): a for a in snapshot.allocations}
    nominated: tuple = ()
    counts = []
    current = snapshot
    for i in range(rounds):
        now = NOW + timedelta(seconds=i)
        current = ClusterSnapshot(snapshot.nodes, tuple(workloads.values()),
                                  tuple(allocations.values()), snapshot.pools, snapshot.queues,
                                  now=now, nominated=nominated)
        result = decide(current)
        nominated = result.nominated if pipelined_later else ()
        counts.append(len(result.evictions)
                      + sum(1 for p in result.placements
                            if not (pipelined_later and p.pipelined)))
        moving = {p.workload_id for p in result.placements if p.moved
                  and not (pipelined_later and p.pipelined)}
        for e in result.evictions:
            w = workloads[e.workload_id]
            gone = [k for k in allocations if k[0] == w.id and (e.pods is None or k[1] in e.pods)]
            for key in gone:
                del allocations[key]
            left = sum(1 for k in allocations if k[0] == w.id)
            moved = e.reason == "consolidate" and w.id in moving
            if left < w.min_pods and not moved:  # the gang restarts whole (a move: it goes on)
                for key in [k for k in allocations if k[0] == w.id]:
                    del allocations[key]
                left = 0
            held = {k[1] for k in allocations if k[0] == w.id}
            workloads[w.id] = Workload(**{
                **{f: getattr(w, f) for f in w.__slots__},
                "waiting_pods": tuple(f"{w.id}-{j}" for j in range(w.pods)
                                      if f"{w.id}-{j}" not in held),
                "started_at": w.started_at if left else None})
        for p in result.placements:
            if pipelined_later and p.pipelined:
                continue
            w = workloads[p.workload_id]
            for pod in p.pods:
                allocations[(w.id, pod.pod)] = Allocation(
                    w.id, pod.pod, pod.node, pod.gpu_devices, portion=pod.portion,
                    cpu_millis=w.cpu_millis, memory_mib=w.memory_mib)
            held = {k[1] for k in allocations if k[0] == w.id}
            workloads[w.id] = Workload(**{
                **{f: getattr(w, f) for f in w.__slots__},
                "waiting_pods": tuple(x for x in w.waiting_pods if x not in held),
                "started_at": w.started_at or now})
    final = ClusterSnapshot(snapshot.nodes, tuple(workloads.values()),
                            tuple(allocations.values()), snapshot.pools, snapshot.queues,
                            now=NOW + timedelta(seconds=rounds), nominated=nominated)
    return counts, final


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contended())
def test_a_contended_cluster_settles(snapshot):
    counts = run_rounds(snapshot, 30)
    assert not any(counts[-20:]), ("still deciding after 10 rounds", counts)


@st.composite
def fragmented(draw) -> ClusterSnapshot:
    """Small preemptible jobs (whole GPUs and fractions sharing devices, a gang across two
    nodes) scattered over 8-GPU nodes, and gangs of whole GPUs or fractions waiting: the shape
    consolidation is for."""
    nodes = tuple(Node(f"n{i}", "default", True, 8, None, 40960)
                  for i in range(draw(st.integers(2, 4))))
    queues = (QueueSpec("t0", "project", "default", None, Quota(16, -1, 1)),
              QueueSpec("t1", "project", "default", None, Quota(16, -1, 1)))
    running, allocations = [], []
    for n in nodes:
        devices = draw(st.lists(st.integers(0, 7), unique=True, max_size=8))
        for d in devices:
            # a whole GPU, or one or two fractions sharing the device
            portions = draw(st.sampled_from([[None], [None], [0.5], [0.5, 0.5], [0.3, 0.6],
                                             [0.7]]))
            for k, portion in enumerate(portions):
                wid = f"r-{n.name}-{d}-{k}"
                running.append(Workload(wid, draw(st.sampled_from(["t0", "t1"])), 50, T0, 1,
                                        preemptible=draw(st.booleans()), started_at=T0,
                                        gpu_portion=portion))
                allocations.append(Allocation(wid, f"{wid}-0", n.name, (d,), portion=portion))
    # a gang across two nodes, one whole GPU per pod on a device left free: partly movable
    free = [(n.name, d) for n in nodes for d in range(8)
            if not any(a.node == n.name and d in a.gpu_devices for a in allocations)]
    spots = {}
    for name, d in free:
        spots.setdefault(name, d)
    if len(spots) >= 2 and draw(st.booleans()):
        (n0, d0), (n1, d1) = list(spots.items())[:2]
        running.append(Workload("gang", "t0", 50, T0, 1, pods=2, min_pods=2, started_at=T0))
        allocations += [Allocation("gang", "gang-0", n0, (d0,)),
                        Allocation("gang", "gang-1", n1, (d1,))]
    pending = []
    for i in range(draw(st.integers(1, 3))):
        pods = draw(st.integers(1, 2))
        portion = draw(st.sampled_from([None, None, 0.5, 0.7]))
        pending.append(Workload(f"g{i}", draw(st.sampled_from(["t0", "t1"])), 50,
                                T0 + timedelta(seconds=i),
                                1 if portion else draw(st.sampled_from([1, 4, 8])),
                                pods=pods, min_pods=pods, gpu_portion=portion,
                                waiting_pods=tuple(f"g{i}-{j}" for j in range(pods))))
    return ClusterSnapshot(nodes, tuple(running + pending), tuple(allocations),
                           (NodePool("default"),), queues, now=NOW)


@SETTINGS
@given(fragmented())
def test_consolidation_keeps_its_promises(snapshot):
    test_disruptive_decisions_keep_their_promises.hypothesis.inner_test(snapshot)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragmented())
def test_a_fragmented_cluster_settles(snapshot):
    counts = run_rounds(snapshot, 30)
    assert not any(counts[-20:]), ("still deciding after 10 rounds", counts)
