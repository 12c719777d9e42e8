"""Properties of fairness over random organisations (scheduler part 3):

- fair shares of whole-GPU requests are whole GPUs and add up to the capacity (or to what is
  wanted, when that is less), at the department level and inside each department;
- once a cluster has settled, no project is below its deserved quota with a workload waiting
  that a preemptible workload of a project over its deserved quota could make room for;
- an organisation shaped like the benchmark's (departments, two pools, whole GPUs, fractions,
  CPU-only work, gangs), with work arriving after the first cycle, settles: no oscillation
  over 30 rounds, also when a placement onto room being vacated is bound only in a later round
  (as the service binds it).
"""

from datetime import timedelta

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
from fairway_scheduler.core.queues import GPU, MILLI, Queues
from tests.scheduler.test_disruption_properties import play
from tests.scheduler.test_scheduler_properties import T0

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _started(first: ClusterSnapshot) -> tuple[list[Workload], list[Allocation]]:
    """What a first cycle placed, running since T0 (what it left waiting is dropped)."""
    placed = {p.workload_id: p for p in decide(first).placements}
    running, allocations = [], []
    for w in first.workloads:
        p = placed.get(w.id)
        if p is None:
            continue
        running.append(Workload(**{**{f: getattr(w, f) for f in w.__slots__},
                                   "waiting_pods": (), "started_at": T0}))
        allocations += [Allocation(w.id, pod.pod, pod.node, pod.gpu_devices,
                                   portion=pod.portion, cpu_millis=w.cpu_millis,
                                   memory_mib=w.memory_mib) for pod in p.pods]
    return running, allocations


# shares in whole GPUs ---------------------------------------------------------------------
@st.composite
def organisations(draw) -> tuple[list[QueueSpec], dict[str, int], int]:
    """Departments and projects in one pool, each project requesting whole GPUs."""
    departments = [f"d{i}" for i in range(draw(st.integers(0, 3)))]
    specs = [QueueSpec(d, "department", "default", None,
                       Quota(draw(st.integers(0, 6)), -1, draw(st.integers(0, 3))))
             for d in departments]
    requested: dict[str, int] = {}
    for i in range(draw(st.integers(1, 6))):
        name = f"p{i}"
        parent = draw(st.sampled_from([None, *departments]))
        limit = draw(st.sampled_from([-1, -1, -1, 2, 5]))
        specs.append(QueueSpec(name, "project", "default", parent,
                               Quota(draw(st.integers(0, 4)), limit, draw(st.integers(0, 3)))))
        requested[name] = draw(st.integers(0, 12))
    return specs, requested, draw(st.integers(0, 24))


@SETTINGS
@given(organisations())
def test_whole_gpu_shares_are_whole_and_fill_the_capacity(org):
    specs, requested, gpus = org
    queues = Queues(specs)
    queues.materialise()
    for name, amount in requested.items():
        queues.project(name, "default").requested[GPU] = amount * MILLI
    queues.compute_fair_shares({"default": [gpus * MILLI, 0, 0]})
    everyone = list(queues.queues.values())
    for q in everyone:
        assert q.fair[GPU] % MILLI == 0, (q.name, q.fair[GPU])
        assert q.fair[GPU] <= q.wanted(GPU), (q.name, q.fair[GPU], q.wanted(GPU))

    def level(members, total):
        wanted = sum(q.wanted(GPU) for q in members)
        given = sum(q.fair[GPU] for q in members)
        # Everything is handed out unless nobody wants more or the weights forbid it (a
        # queue over-quota weight 0 takes no more than its deserved quota).
        open_ = [q for q in members if q.fair[GPU] < q.wanted(GPU) and q.weight[GPU] > 0]
        assert given <= total, (given, total)
        if open_:
            assert given == total, ([(q.name, q.fair[GPU], q.wanted(GPU)) for q in members],
                                    total)
        else:
            assert given == min(total, wanted) or given < total

    top = [q for q in everyone if q.parent is None]
    level(top, gpus * MILLI)
    for department in (q for q in top if q.kind == "department"):
        level([q for q in everyone if q.parent is department], department.fair[GPU])


# deserved quota guaranteed ---------------------------------------------------------------
@st.composite
def starved(draw) -> ClusterSnapshot:
    """Projects (no departments) in one pool of whole-GPU nodes; some run work placed by a
    first cycle, others submit after it."""
    nodes = tuple(Node(f"n{i}", "default", True, draw(st.sampled_from([2, 4, 8])), None, 40960)
                  for i in range(draw(st.integers(1, 3))))
    capacity = sum(n.gpus for n in nodes)
    projects = [f"t{i}" for i in range(draw(st.integers(2, 3)))]
    queues = tuple(QueueSpec(p, "project", "default", None,
                             Quota(draw(st.integers(0, capacity)), -1,
                                   draw(st.sampled_from([0, 1, 2]))))
                   for p in projects)
    early = draw(st.sampled_from(projects))

    def workloads(prefix: str, count: int, at: int, who: list[str]) -> list[Workload]:
        return [Workload(
            id=f"{prefix}{i}", project=draw(st.sampled_from(who)),
            priority=draw(st.sampled_from([50, 100])),
            submitted_at=T0 + timedelta(seconds=at + i),
            gpus_per_pod=draw(st.sampled_from([1, 1, 2, 4])),
            preemptible=draw(st.booleans()), waiting_pods=(f"{prefix}{i}-0",))
            for i in range(count)]

    first = workloads("r", draw(st.integers(1, 10)), 0, [early])
    running, allocations = _started(ClusterSnapshot(nodes, tuple(first), (),
                                                    (NodePool("default"),), queues))
    later = workloads("p", draw(st.integers(1, 6)), 100, projects)
    return ClusterSnapshot(nodes, tuple(running + later), tuple(allocations),
                           (NodePool("default"),), queues)


def _room_for(settled: ClusterSnapshot, waiting: Workload, allocated: dict[str, int],
              deserved: dict[str, int]) -> str | None:
    """A node where the waiting workload would fit once preemptible workloads of projects
    over their deserved quota (each kept at or above it, as the strategy judges it) leave."""
    by_id = {w.id: w for w in settled.workloads}
    for node in settled.nodes:
        here = [a for a in settled.allocations if a.node == node.name]
        free = node.gpus - sum(len(a.gpu_devices) for a in here)
        remaining = dict(allocated)
        for a in sorted(here, key=lambda a: a.workload_id):
            owner = by_id[a.workload_id]
            if (owner.preemptible and owner.project != waiting.project
                    and remaining[owner.project] > deserved[owner.project]):
                free += len(a.gpu_devices)
                remaining[owner.project] -= len(a.gpu_devices)
        if free >= waiting.gpus_per_pod:
            return node.name
    return None


@SETTINGS
@given(starved())
def test_no_project_stays_below_deserved_while_an_over_deserved_one_could_make_room(snapshot):
    counts, settled = play(snapshot, 12)
    assert not any(counts[-4:]), ("did not settle", counts)
    deserved = {q.name: round(q.gpu.deserved) for q in snapshot.queues}
    allocated = dict.fromkeys(deserved, 0)
    by_id = {w.id: w for w in settled.workloads}
    for a in settled.allocations:
        allocated[by_id[a.workload_id].project] += len(a.gpu_devices)
    for w in settled.workloads:
        if not w.waiting_pods:
            continue
        if allocated[w.project] + w.gpus_per_pod > deserved[w.project]:
            continue  # it would take its project over its deserved quota: no promise
        node = _room_for(settled, w, allocated, deserved)
        assert node is None, (f"{w.id} ({w.gpus_per_pod} GPUs) of {w.project} waits at "
                              f"{allocated[w.project]} of deserved {deserved[w.project]}, "
                              f"room could be made on {node}", allocated, deserved)


# no oscillation --------------------------------------------------------------------------
POOLS = ("pool-a", "pool-b")


@st.composite
def organisation_shaped(draw) -> ClusterSnapshot:
    """The benchmark's organisation, small: two departments of two or three projects over two
    pools (deserved quotas adding up to 80% of each), 8-GPU nodes; a mix of whole GPUs,
    fractions, CPU-only work and small gangs, with pool preferences. Part of it runs (placed
    by a first cycle), the rest arrives after."""
    nodes = tuple(Node(f"n{i}", POOLS[i % 2], True, 8, "A100", 81920, 32000, 262144)
                  for i in range(draw(st.integers(2, 5))))
    per_pool = {pool: 8 * sum(1 for n in nodes if n.pool == pool) for pool in POOLS}
    departments = ["d0", "d1"]
    projects = {f"p{d}-{i}": f"d{d}" for d in range(2) for i in range(draw(st.integers(2, 3)))}
    queues = [QueueSpec(d, "department", pool, None, Quota(per_pool[pool] * 0.4, -1, 1))
              for d in departments for pool in POOLS]
    queues += [QueueSpec(p, "project", pool, parent,
                         Quota(round(per_pool[pool] * 0.4 / 3, 2), -1,
                               draw(st.integers(1, 3))))
               for p, parent in projects.items() for pool in POOLS]

    def mix(prefix: str, count: int, at: int) -> list[Workload]:
        out = []
        for i in range(count):
            wid = f"{prefix}{i}"
            kind = draw(st.sampled_from(["whole", "whole", "fraction", "fraction", "cpu",
                                         "cpu", "cpu", "gang"]))
            pods, gpus, portion, cpu = 1, 1, None, 1000
            if kind == "gang":
                pods, gpus = 2, draw(st.sampled_from([2, 4]))
            elif kind == "fraction":
                portion = draw(st.sampled_from([0.25, 0.5]))
            elif kind == "cpu":
                gpus, cpu = 0, draw(st.sampled_from([1000, 2000, 4000]))
            out.append(Workload(
                wid, draw(st.sampled_from(sorted(projects))), 50,
                T0 + timedelta(seconds=at + i), gpus, min_pods=pods, pods=pods,
                node_pools=draw(st.sampled_from([(), POOLS, POOLS[::-1]])),
                waiting_pods=tuple(f"{wid}-{j}" for j in range(pods)), gpu_portion=portion,
                cpu_millis=cpu, memory_mib=4096))
        return out

    pools = (NodePool(POOLS[0]), NodePool(POOLS[1], "spread"))
    first = mix("r", draw(st.integers(4, 30)), 0)
    running, allocations = _started(ClusterSnapshot(nodes, tuple(first), (), pools,
                                                    tuple(queues)))
    later = mix("n", draw(st.integers(1, 20)), 100)
    return ClusterSnapshot(nodes, tuple(running + later), tuple(allocations), pools,
                           tuple(queues))


@SETTINGS
@given(organisation_shaped(), st.booleans())
def test_an_organisation_shaped_cluster_settles(snapshot, pipelined_later):
    counts, _ = play(snapshot, 30, pipelined_later=pipelined_later)
    assert not any(counts[-10:]), ("still deciding after 20 rounds", counts)
