"""Walks that skip waiting workloads asking as one refused before, over random clusters with
many waiting workloads that ask alike, in two pools:

- the disruptive actions' walk (`cycle._disrupt`) skips workloads that ask as one refused
  since the last kept statement, and runs of them: it decides exactly as the whole walk (every
  waiting workload asked about, in `Solver.preemptors`' order), and asks about the same
  workloads, in the same order, as the walk that skips them one by one;
- allocation's first walks refuse a workload that asks as one refused while the room of its
  pools stood, without trying it (`Allocate.attempt`), and a pending reason reads what it
  found of a pool's hosts for one request while the pool's room stands (`_no_room_any`): they
  decide as when every workload is tried and every reason worked out afresh.
"""

from datetime import timedelta
from unittest import mock

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
    cycle,
    decide,
)
from fairway_scheduler.core.actions.allocate import Allocate
from fairway_scheduler.core.actions.solver import preemptor_class
from tests.scheduler.test_scheduler_properties import T0

NOW = T0 + timedelta(hours=1)
POOLS = (NodePool("default"), NodePool("b"))
WHERE = ((), ("default",), ("b",), ("b", "default"))


@st.composite
def alike(draw) -> ClusterSnapshot:
    """Running work placed by a first cycle (some of it elastic, with pods still waiting), and
    many pending workloads drawn from a few shapes, so that most ask as another does."""
    nodes = tuple(Node(f"{pool.name}{i}", pool.name, True, draw(st.sampled_from([2, 4, 8])),
                       None, 40960, cpu_millis=16000, memory_mib=65536)
                  for pool in POOLS for i in range(draw(st.integers(1, 3))))
    projects = [f"t{i}" for i in range(draw(st.integers(2, 3)))]
    department = draw(st.sampled_from([None, "d0"]))
    queues = tuple(QueueSpec(p, "project", pool.name, department if i % 2 else None,
                             Quota(draw(st.sampled_from([0, 1, 2, 4])),
                                   draw(st.sampled_from([-1, -1, 8])), 1))
                   for i, p in enumerate(projects) for pool in POOLS)
    shapes = [(draw(st.sampled_from(projects)), draw(st.sampled_from([50, 50, 100])),
               draw(st.sampled_from([1, 1, 2, 4])), draw(st.sampled_from([None, None, 0.5])),
               draw(st.integers(1, 2)), draw(st.booleans()), draw(st.sampled_from(WHERE)),
               draw(st.sampled_from([0, 0, 1000, 6000])))
              for _ in range(draw(st.integers(1, 4)))]

    def workloads(prefix: str, count: int, at: int) -> list[Workload]:
        out = []
        for i in range(count):
            project, priority, gpus, portion, pods, preemptible, where, cpu = draw(
                st.sampled_from(shapes))
            extra = 0
            if prefix == "r":  # running work: some elastic, of low priority, much of one project
                extra = draw(st.sampled_from([0, 0, 1]))
                project = draw(st.sampled_from([projects[0], project]))
                priority = 50
            out.append(Workload(
                id=f"{prefix}{i}", project=project, priority=priority,
                submitted_at=T0 + timedelta(seconds=at + draw(st.integers(0, 3))),
                gpus_per_pod=1 if portion else gpus, gpu_portion=portion, pods=pods + extra,
                min_pods=pods, preemptible=preemptible, node_pools=where, cpu_millis=cpu,
                waiting_pods=tuple(f"{prefix}{i}-{j}" for j in range(pods + extra))))
        return out

    first = workloads("r", draw(st.integers(1, 24)), 0)
    result = allocate(ClusterSnapshot(nodes, tuple(first), (), POOLS, queues))
    placed = {p.workload_id: p for p in result.placements}
    running, allocations = [], []
    for w in first:
        p = placed.get(w.id)
        if p is None:
            continue
        names = {pod.pod for pod in p.pods}
        running.append(Workload(**{**{f: getattr(w, f) for f in w.__slots__},
                                   "waiting_pods": tuple(x for x in w.waiting_pods
                                                         if x not in names),
                                   "started_at": T0}))
        allocations += [Allocation(w.id, pod.pod, pod.node, pod.gpu_devices, portion=pod.portion)
                        for pod in p.pods]
    pending = workloads("p", draw(st.integers(2, 30)), 100)
    return ClusterSnapshot(nodes, tuple(running + pending), tuple(allocations), POOLS, queues,
                           now=NOW)


def _walk_each(solver, action) -> None:
    """Every waiting workload asked about, in order (the walk before any skipping)."""
    for workload in solver.preemptors():
        for pool in solver.session.target_pools(workload):
            if action(solver, workload, pool):
                break


def _walk_skipping(solver, action) -> None:
    """The whole order walked, each workload skipped in a pool where one that asks alike was
    refused since the last kept statement."""
    session = solver.session
    refused: dict[tuple, int] = {}
    for workload in solver.preemptors():
        cls = preemptor_class(session, solver, workload)
        for pool in session.target_pools(workload):
            if cls is not None and refused.get((cls, pool)) == session.commits:
                continue
            kept = session.commits
            if action(solver, workload, pool):
                break
            if cls is not None and session.commits == kept:
                refused[(cls, pool)] = kept


def _decide(snapshot: ClusterSnapshot, walk=None) -> tuple:
    """The cycle's result, and the (action, workload, pool) asked, in order."""
    asked: list[tuple[str, str, str]] = []
    real = cycle.disruptive_actions

    def recording(settings):
        def wrap(action):
            def asking(solver, workload, pool):
                asked.append((action.__name__, workload.id, pool))
                return action(solver, workload, pool)
            return asking
        return [wrap(a) for a in real(settings)]

    with mock.patch.object(cycle, "disruptive_actions", recording):
        if walk is None:
            return decide(snapshot), asked
        with mock.patch.object(cycle, "_disrupt", walk):
            return decide(snapshot), asked


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike())
def test_the_walk_decides_as_the_whole_walk(snapshot):
    result, asked = _decide(snapshot)
    whole, _ = _decide(snapshot, _walk_each)
    assert result == whole
    _, skipping = _decide(snapshot, _walk_skipping)
    assert asked == skipping


class _Forgetting(set):
    """Remembers no refusal: every workload is tried."""

    def __contains__(self, item) -> bool:
        return False


class _Unkept(dict):
    """Keeps nothing: every answer is worked out again."""

    def __setitem__(self, key, value) -> None:
        pass


def _allocate_trying_each(session) -> Allocate:
    allocate = Allocate(session)
    allocate._refused_alike = _Forgetting()
    allocate._host_shorts = _Unkept()
    return allocate


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike())
def test_allocation_decides_as_when_every_workload_is_tried(snapshot):
    with mock.patch.object(cycle, "Allocate", _allocate_trying_each):
        each = decide(snapshot)
    assert decide(snapshot) == each
