"""Properties of topology-aware placement over random clusters (two levels, block and rack,
some nodes unlabelled) with running work and new work asking for topology: a required
placement is never split (every pod of the workload, those it ran before and those placed now,
on nodes of one domain of the required level, which carry the label); a disruption made for
a rack-bound workload takes its victims where the workload lands; no device is over-committed;
and without topology the answer is the same whatever topology the pool names."""

from collections import defaultdict
from dataclasses import replace
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
    decide,
)
from tests.scheduler.test_scheduler_properties import T0

BLOCK, RACK = "topology.fairway.io/block", "topology.fairway.io/rack"
LEVELS = (BLOCK, RACK)
NOW = T0 + timedelta(hours=1)
ASKS = ((None, None), (RACK, None), (RACK, RACK), (BLOCK, RACK), (None, RACK), (BLOCK, None))


@st.composite
def clusters(draw) -> ClusterSnapshot:
    nodes = []
    for i in range(draw(st.integers(2, 8))):
        block = draw(st.sampled_from(["b1", "b2", None]))
        rack = draw(st.sampled_from(["r1", "r2"]))
        labels = ((BLOCK, block), (RACK, rack)) if block else ()
        nodes.append(Node(f"n{i}", "default", True, draw(st.sampled_from([2, 4, 8])), None,
                          40960, labels=labels))
    projects = [f"t{i}" for i in range(draw(st.integers(1, 3)))]
    queues = tuple(QueueSpec(p, "project", "default", None,
                             Quota(draw(st.sampled_from([0, 2, 4, 8])), -1, 1))
                   for p in projects)
    running = []
    for i in range(draw(st.integers(0, 6))):
        pods = draw(st.integers(1, 3))
        required, preferred = draw(st.sampled_from(ASKS))
        running.append(Workload(
            id=f"old{i}", project=draw(st.sampled_from(projects)), priority=50,
            submitted_at=T0 + timedelta(seconds=i), gpus_per_pod=draw(st.sampled_from([1, 2])),
            pods=pods, min_pods=draw(st.integers(1, pods)),
            waiting_pods=tuple(f"old{i}-{j}" for j in range(pods)),
            topology_required=required, topology_preferred=preferred))
    first = decide(ClusterSnapshot(tuple(nodes), tuple(running), (),
                                   (NodePool("default", topology=LEVELS),), queues, T0))
    allocations = []
    started = []
    for p in first.placements:
        allocations += [Allocation(p.workload_id, pod.pod, pod.node, pod.gpu_devices)
                        for pod in p.pods]
    placed = {p.workload_id: {pod.pod for pod in p.pods} for p in first.placements}
    for w in running:
        if w.id in placed:
            started.append(replace(w, started_at=T0, waiting_pods=tuple(
                pod for pod in w.waiting_pods if pod not in placed[w.id])))
    new = []
    for i in range(draw(st.integers(1, 5))):
        pods = draw(st.integers(1, 4))
        required, preferred = draw(st.sampled_from(ASKS))
        new.append(Workload(
            id=f"new{i}", project=draw(st.sampled_from(projects)),
            priority=draw(st.sampled_from([50, 100])),
            submitted_at=NOW + timedelta(seconds=i),
            gpus_per_pod=draw(st.sampled_from([1, 2, 4])), pods=pods,
            min_pods=draw(st.integers(1, pods)),
            waiting_pods=tuple(f"new{i}-{j}" for j in range(pods)),
            topology_required=required, topology_preferred=preferred))
    return ClusterSnapshot(tuple(nodes), tuple(started + new), tuple(allocations),
                           (NodePool("default", topology=LEVELS),), queues, NOW)


def _domain(node: Node, label: str) -> tuple[str, ...] | None:
    labels = dict(node.labels)
    key = tuple(labels.get(level) for level in LEVELS[:LEVELS.index(label) + 1])
    return None if None in key else key


def _placed_by_reclaim_then_moved() -> ClusterSnapshot:
    """Found by this property: `old2` (a rack, one of its two pods running in r1) has its
    second pod placed by reclaim (evicting `old4` of t2, over its share); then preemption for
    `new2` (a rack, priority 100) moved `old2`'s running pod to r2 as if it were alone: its pod
    placed this cycle was not among its holds. A workload placed more in a cycle is no victim
    nor mover for the rest of it."""
    def running(wid: str, project: str, pods: int, min_pods: int, gpus: int, waiting: int,
                required: str | None = None) -> Workload:
        return Workload(id=wid, project=project, priority=50, submitted_at=T0, pods=pods,
                        min_pods=min_pods, gpus_per_pod=gpus, started_at=T0,
                        waiting_pods=tuple(f"{wid}-{j}" for j in range(pods - waiting, pods)),
                        topology_required=required)

    def new(wid: str, project: str, pods: int, gpus: int, priority: int = 50,
            required: str | None = None) -> Workload:
        return Workload(id=wid, project=project, priority=priority, submitted_at=NOW,
                        pods=pods, min_pods=pods, gpus_per_pod=gpus,
                        waiting_pods=tuple(f"{wid}-{j}" for j in range(pods)),
                        topology_required=required)

    nodes = tuple(Node(f"n{i}", "default", True, 4, None, 40960,
                       labels=((BLOCK, "b1"), (RACK, f"r{i + 1}"))) for i in range(2))
    workloads = (running("old0", "t0", 1, 1, 2, 0), running("old2", "t0", 2, 1, 1, 1, RACK),
                 running("old4", "t2", 2, 1, 1, 0), running("old5", "t2", 1, 1, 2, 0),
                 new("new0", "t2", 1, 1), new("new1", "t0", 1, 2),
                 new("new2", "t0", 3, 1, priority=100, required=RACK))
    allocations = (Allocation("old4", "old4-0", "n0", (0,)),
                   Allocation("old4", "old4-1", "n1", (2,)),
                   Allocation("old0", "old0-0", "n0", (1, 2)),
                   Allocation("old5", "old5-0", "n1", (0, 1)),
                   Allocation("old2", "old2-0", "n0", (3,)))
    queues = tuple(QueueSpec(p, "project", "default", None, Quota(gpu, -1, 1))
                   for p, gpu in (("t0", 4), ("t1", 0), ("t2", 4)))
    return ClusterSnapshot(nodes, workloads, allocations,
                           (NodePool("default", topology=LEVELS),), queues, NOW)


def _elastic_pod_elsewhere() -> ClusterSnapshot:
    """Found by this property: `new3` (one pod of 4 GPUs, a rack) has its room made on n3 by
    reclaim from t1. Among n3's victims were `old2`'s pods above its minimum, every one of
    them: the one on n4 (rack r2) went first; it freed nothing on n3, but its room took
    `old2`'s pod moved aside from n3, so it could not be taken back. Two restarts for one
    pod's room, and a victim outside the rack the workload landed in. A node's victims are
    its gangs and the pods above their minimum that run on it."""
    def running(wid: str, project: str, pods: int, at: int) -> Workload:
        return Workload(id=wid, project=project, priority=50, submitted_at=T0
                        + timedelta(seconds=at), pods=pods, min_pods=2 if wid == "old4" else 1,
                        gpus_per_pod=2 if wid in ("old2", "old4") else 1, waiting_pods=())

    def new(wid: str, gpus: int, at: int, required: str | None = None) -> Workload:
        return Workload(id=wid, project="t0", priority=50, submitted_at=NOW
                        + timedelta(seconds=at), pods=1, gpus_per_pod=gpus,
                        waiting_pods=(f"{wid}-0",), topology_required=required)

    nodes = tuple(Node(f"n{i}", "default", True, gpus, None, 40960,
                       labels=((BLOCK, "b1"), (RACK, "r2" if i == 4 else "r1")))
                  for i, gpus in enumerate((2, 2, 2, 8, 8)))
    workloads = (running("old0", "t1", 3, 0), running("old1", "t0", 2, 1),
                 running("old2", "t1", 3, 2), running("old3", "t0", 1, 3),
                 running("old4", "t1", 3, 4), new("new0", 1, 0), new("new1", 1, 1),
                 new("new2", 2, 2), new("new3", 4, 3, RACK))
    allocations = (Allocation("old0", "old0-0", "n0", (0,)),
                   Allocation("old0", "old0-1", "n3", (3,)),
                   Allocation("old0", "old0-2", "n4", (0,)),
                   Allocation("old2", "old2-0", "n1", (0, 1)),
                   Allocation("old2", "old2-1", "n3", (4, 5)),
                   Allocation("old2", "old2-2", "n4", (2, 3)),
                   Allocation("old1", "old1-0", "n0", (1,)),
                   Allocation("old1", "old1-1", "n4", (1,)),
                   Allocation("old4", "old4-0", "n2", (0, 1)),
                   Allocation("old4", "old4-1", "n3", (0, 1)),
                   Allocation("old4", "old4-2", "n3", (6, 7)),
                   Allocation("old3", "old3-0", "n3", (2,)))
    queues = tuple(QueueSpec(p, "project", "default", None, Quota(0, -1, 1))
                   for p in ("t0", "t1"))
    return ClusterSnapshot(nodes, workloads, allocations,
                           (NodePool("default", topology=LEVELS),), queues, NOW)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
@example(_placed_by_reclaim_then_moved())
@example(_elastic_pod_elsewhere())
def test_a_required_placement_is_never_split(snapshot: ClusterSnapshot):
    result = decide(snapshot)
    nodes = {n.name: n for n in snapshot.nodes}
    workloads = {w.id: w for w in snapshot.workloads}
    gone: dict[str, set[str] | None] = {}  # evicted pods per workload (None: all)
    for e in result.evictions:
        if e.pods is None or gone.get(e.workload_id, set()) is None:
            gone[e.workload_id] = None
        else:
            gone.setdefault(e.workload_id, set()).update(e.pods)  # type: ignore[union-attr]

    def stays(a: Allocation) -> bool:
        if a.workload_id not in gone:
            return True
        pods = gone[a.workload_id]
        return pods is not None and a.pod not in pods

    moved = {p.workload_id for p in result.placements if p.moved}
    holds: dict[str, list[str]] = defaultdict(list)
    for a in snapshot.allocations:
        if stays(a):
            holds[a.workload_id].append(a.node)
    for p in result.placements:
        holds[p.workload_id] += [pod.node for pod in p.pods]
    for p in result.placements:
        w = workloads[p.workload_id]
        if w.topology_required is None:
            continue  # (a moved workload too: where it runs after the move)
        domains = {_domain(nodes[n], w.topology_required) for n in holds[w.id]}
        assert None not in domains, (w.id, holds[w.id])
        assert len(domains) == 1, (w.id, holds[w.id])
        # its victims made room where it landed (a move makes none: it is its own)
        [where] = domains
        for e in result.evictions if p.workload_id not in moved else ():
            if e.by == w.id and e.reason in ("reclaim", "preempt"):
                victim_nodes = {a.node for a in snapshot.allocations
                                if a.workload_id == e.workload_id
                                and (e.pods is None or a.pod in e.pods)}
                assert any(_domain(nodes[n], w.topology_required) == where
                           for n in victim_nodes), (w.id, e)
    # no device over-committed: what stays and what is placed
    used: dict[tuple[str, int], int] = defaultdict(int)
    for a in snapshot.allocations:
        if stays(a):
            for d in a.gpu_devices:
                used[(a.node, d)] += 1
    for p in result.placements:
        for pod in p.pods:
            for d in pod.gpu_devices:
                used[(pod.node, d)] += 1
    assert all(v <= 1 for v in used.values()), used


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_without_topology_requests_a_topology_changes_nothing(snapshot: ClusterSnapshot):
    plain = replace(snapshot, workloads=tuple(
        replace(w, topology_required=None, topology_preferred=None)
        for w in snapshot.workloads))
    no_levels = replace(plain, pools=(NodePool("default"),),
                        nodes=tuple(replace(n, labels=()) for n in plain.nodes))
    assert decide(plain) == decide(no_levels)


def test_a_nodes_victims_are_its_own_pods_above_the_minimum():
    """`_elastic_pod_elsewhere` decided: `new3` on n3, its room made by `old2`'s pod there
    and `old4`'s; nothing evicted or moved on n4."""
    snapshot = _elastic_pod_elsewhere()
    result = decide(snapshot)
    [new3] = [p for p in result.placements if p.workload_id == "new3"]
    assert [pod.node for pod in new3.pods] == ["n3"]
    evicted = sorted((e.workload_id, e.pods, e.reason) for e in result.evictions)
    assert evicted == [("old2", ("old2-1",), "reclaim"), ("old4", ("old4-2",), "reclaim")]
