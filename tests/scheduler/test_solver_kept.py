"""What the solver keeps within a cycle, checked while whole cycles run against the same found
afresh: a single pod's node order (`Solver.node_order`), kept per pool and request shape and
brought up to date from the nodes kept evictions and placements changed, against every node of
the pool weighed as the room lies (and the same decisions with the order made afresh at every
ask); and the runs of waiting workloads given again to an action after one that kept no
statement (`Solver.preemptor_runs`), against every key worked out afresh."""

from datetime import UTC, datetime
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
    decide,
)
from fairway_scheduler.core.actions.solver import Solver
from fairway_scheduler.core.framework import Request
from fairway_scheduler.core.nodes import FULL, NodeState, PoolNodes, milli_of
from tests.scheduler.test_disruption_properties import contended
from tests.scheduler.test_disruption_walk import alike
from tests.scheduler.test_fairness_properties import organisation_shaped


def afresh(pool: PoolNodes, request: Request, gang: int, among=None
           ) -> list[tuple[int, NodeState]] | None:
    """Every node of the pool (or of `among`) weighed as the room lies now."""
    if gang != 1 or not request.devices:
        return None
    devices = request.devices
    nodes = pool.gpu_nodes if among is None else [
        n for n in pool.gpu_nodes if n.idx in among]
    if request.node_type is not None:
        nodes = [n for n in nodes if n.node_type == request.node_type]
    out: list[tuple[int, int, NodeState]] = []
    for node in nodes:
        if not request.fraction:
            if node.whole < devices <= node.gpus:
                out.append(((devices - node.whole) * FULL, node.idx, node))
            continue
        milli = milli_of(node, request.portion, request.memory)
        if milli is None or node.gpus < devices:
            continue
        deficit = sum(max(0, u + milli - FULL) for u in sorted(node.used)[:devices])
        if deficit > 0:
            out.append((deficit, node.idx, node))
    out.sort(key=lambda e: (e[0], e[1]))
    return [(deficit, node) for deficit, _, node in out]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(alike(), contended(), organisation_shaped()))
def test_the_kept_node_order_is_the_one_weighed_afresh(snapshot):
    kept_order = Solver.node_order

    def checked(self, pool, request, gang, among=None):
        found = kept_order(self, pool, request, gang, among)
        want = afresh(pool, request, gang, among)
        assert (None if found is None else [(d, n.idx) for d, n in found]) == (
            None if want is None else [(d, n.idx) for d, n in want])
        return found

    with mock.patch.object(Solver, "node_order", checked):
        result = decide(snapshot)
    # and the same decisions with the order weighed afresh at every ask
    with mock.patch.object(Solver, "node_order",
                           lambda self, pool, request, gang, among=None:
                           afresh(pool, request, gang, among)):
        assert decide(snapshot) == result


def test_a_kept_order_follows_kept_evictions_and_placements():
    """Reclaim placing one pod after another in a full pool, each on the node its victims
    freed: every ask after the first is answered from the kept order brought up to date."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    nodes = tuple(Node(f"n{i}", "default", True, 2, None, 40960) for i in range(6))
    queues = (QueueSpec("a", "project", "default", gpu=Quota(2)),
              QueueSpec("b", "project", "default", gpu=Quota(10)))
    running = [Workload(f"r{i}", "a", 50, t0, 1, pods=1, started_at=t0) for i in range(12)]
    allocations = tuple(Allocation(f"r{i}", "p0", f"n{i // 2}", (i % 2,)) for i in range(12))
    waiting = [Workload(f"w{i}", "b", 50, t0, 1, pods=1, waiting_pods=("q0",),
                        gpu_portion=0.5)
               for i in range(4)]
    snapshot = ClusterSnapshot(nodes, (*running, *waiting), allocations,
                               (NodePool("default"),), queues)
    kept_order = Solver.node_order
    brought_up_to_date: list[bool] = []

    def checked(self, pool, request, gang, among=None):
        known = len(self._node_orders)
        found = kept_order(self, pool, request, gang, among)
        brought_up_to_date.append(known == len(self._node_orders))
        assert [(d, n.idx) for d, n in found] == [
            (d, n.idx) for d, n in afresh(pool, request, gang, among)]
        return found

    with mock.patch.object(Solver, "node_order", checked):
        result = decide(snapshot)
    assert len(result.evictions) >= 2
    assert brought_up_to_date.count(True) >= 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(alike(), contended()))
def test_the_runs_given_again_are_those_found_afresh(snapshot):
    """`Solver.preemptor_runs` answers an action after one that kept no statement as before:
    every workload's key in its run or alone is the one worked out afresh, and together they
    are `preemptors`, in its order."""
    found = Solver.preemptor_runs

    def checked(self):
        runs, singles = found(self)
        kept = (self._keys, self._orders)
        self._keys, self._orders = {}, {}
        try:
            keyed = [(run.key(i), m) for run in runs for i, m in enumerate(run.members)]
            keyed += singles
            assert all(key == self.preemptor_key(w) for key, w in keyed)
            keyed.sort(key=lambda e: e[0])
            assert [w.id for _, w in keyed] == [w.id for w in self.preemptors()]
        finally:
            self._keys, self._orders = kept
        return runs, singles

    with mock.patch.object(Solver, "preemptor_runs", checked):
        decide(snapshot)
