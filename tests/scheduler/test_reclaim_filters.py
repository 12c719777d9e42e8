"""What reclaim leaves out without looking, checked while whole cycles run: the queues that
may give (`Solver.queues_over`, kept per kept statement) are those every queue of the pool
judged afresh would give, in the same order; and a node `on_one_node` passes over as holding
nothing of the queues that may give (`_Reclaim.holding`) has nothing of theirs in its
`held_on`."""

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
from fairway_scheduler.core.actions import reclaim
from fairway_scheduler.core.actions.solver import Solver, _above
from fairway_scheduler.core.framework import Session, Statement
from tests.scheduler.test_disruption_properties import contended
from tests.scheduler.test_disruption_walk import alike
from tests.scheduler.test_fairness_properties import organisation_shaped
from tests.scheduler.test_scheduler_properties import T0


class _Everywhere:
    """Every node (what `holding` answered before it was asked: nothing passed over)."""

    def __contains__(self, idx: object) -> bool:
        return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(alike(), contended(), organisation_shaped()))
def test_reclaim_leaves_out_only_what_could_not_give(snapshot):
    made = reclaim._Reclaim.__init__
    holding = reclaim._Reclaim.holding
    on_one_node = reclaim._Reclaim.on_one_node
    asked: list[tuple[list[str], set[int]]] = []

    def init(self, solver, workload, pool, reclaimer, need, gang):
        made(self, solver, workload, pool, reclaimer, need, gang)
        assert self.queues == [q for q in solver.queues_in(pool)
                               if q is not reclaimer and self.acceptable(q)]

    def held(self, projects):
        nodes = holding(self, projects)
        asked.append((projects, set(nodes)))
        return nodes

    def one_node(self, request):
        asked.clear()
        placed = on_one_node(self, request)
        names = {q.name for q in self.queues}
        for projects, nodes in asked:
            assert set(projects) <= names
            for idx in self.solver._held_on:
                if idx not in nodes:
                    held = self.solver.held_on(idx)
                    assert not any(held.get(p, 0) > 0 for p in projects)
        return placed

    with (mock.patch.object(reclaim._Reclaim, "__init__", init),
          mock.patch.object(reclaim._Reclaim, "holding", held),
          mock.patch.object(reclaim._Reclaim, "on_one_node", one_node)):
        checked = decide(snapshot)
    # and the same decisions with nothing left out (the queues, nodes, asked afresh)
    with (mock.patch.object(Solver, "queues_over", lambda self, pool, _: self.queues_in(pool)),
          mock.patch.object(reclaim._Reclaim, "holding", lambda self, projects: _Everywhere())):
        assert decide(snapshot) == checked
    assert decide(snapshot) == checked


def test_the_givers_follow_kept_statements():
    """`queues_over` as judged afresh after a statement kept and one rolled back."""
    nodes = (Node("n0", "default", True, 8, None, 40960),)
    queues = (QueueSpec("a", "project", "default", gpu=Quota(1)),
              QueueSpec("b", "project", "default", gpu=Quota(1)))
    running = Workload("w0", "a", 50, T0, 1, min_pods=4, pods=4, started_at=T0)
    allocations = tuple(Allocation("w0", f"p{i}", "n0", (i,)) for i in range(4))
    snapshot = ClusterSnapshot(nodes, (running, Workload("w1", "b", 50, T0, 1, pods=2,
                                                         waiting_pods=("q0", "q1"))),
                               allocations, (NodePool("default"),), queues)
    session = Session(snapshot)
    solver = Solver(session)

    def afresh() -> list[str]:
        return [q.name for q in solver.queues_in("default")
                if _above(q, True) or (q.parent is not None and _above(q.parent, True))]

    assert [q.name for q in solver.queues_over("default", True)] == afresh() == ["a"]
    for kept in (False, True):
        statement = Statement(session, session.pools["default"])
        for hold in solver.holds["w0"]:
            statement.evict(hold)
        if kept:
            statement.commit()
        else:
            statement.rollback()
        assert [q.name for q in solver.queues_over("default", True)] == afresh()
    assert afresh() == []
