"""Reclaim's victim units on a node (`Solver.units_on`), ranked without building the victim
units of the node's queues (placed from the kept index's victim order, `Solver._places`),
and a queue's units built from that order (`Solver._units`), against the ranking of before,
which built every queue of the node when first asked, each found and sorted afresh
(`built_rank`, `units_afresh` below): after random sequences of pods bound and released,
workloads changed (priority, minimum, preemptibility, made again) cycle after cycle on one
ledger, and within a cycle nodes asked and units evicted in any order. The same units in the
same order, and every queue's units, built whenever, as they were built before."""

import types
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import Allocation, ClusterSnapshot, Node, NodePool, Workload
from fairway_scheduler.core.actions.solver import Solver, Unit, _over
from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.nodes import NodeState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODES = [("n1", "a"), ("n2", "a"), ("n3", "b")]
WIDS = [f"w{i}" for i in range(6)]
PODS = ["p0", "p1", "p2", "p10"]


def built_rank(self: Solver, node: NodeState, pool: str) -> list[Unit]:
    """`Solver._rank_units_on` as it was: every queue of the node built."""
    ranked = []
    for wid in self.on_node(node.idx):
        holds = self.holds.get(wid)
        if not holds:
            continue
        w = holds[0].workload
        queue = self.session.queues.project(w.project, pool)
        self._units(w.project, pool)
        for position, unit in self.units_of.get(wid, ()):
            # (its pods above the minimum on the node only: one elsewhere frees nothing here)
            if (self.current(unit, []) is not None
                    and (not unit.surplus or unit.holds[0].idx == node.idx)):
                ranked.append((_over(queue), position, unit))
    ranked.sort(key=lambda e: (e[0], e[1]))
    return [unit for _, _, unit in ranked]


def units_afresh(self: Solver, project: str, pool: str) -> list[Unit]:
    """`Solver._units` as it was: the queue's workloads found, filtered and sorted."""
    key = (project, pool)
    units = self.queue_units.get(key)
    if units is not None:
        return units
    workloads = [self.holds[wid][0].workload for wid in self.by_queue.get(key, ())
                 if wid in self.holds]
    workloads = [w for w in workloads if w.preemptible and not self.protected(w, pool)]
    workloads.sort(key=lambda w: (w.priority, -w.submitted_at.timestamp(), w.id))
    surplus: list[Unit] = []
    gangs: list[Unit] = []
    for w in workloads:
        holds = self.holds[w.id]
        extra = max(0, len(holds) - w.min_pods)
        surplus += [Unit(w, [h], True) for h in reversed(holds[len(holds) - extra:])]
        gangs.append(Unit(w, [], False))
    units = self.queue_units[key] = surplus + gangs
    for position, unit in enumerate(units):
        self.units_of.setdefault(unit.workload.id, []).append((position, unit))
    self.cursor[key] = 0
    self.lowest_priority[key] = workloads[0].priority if workloads else None
    return units


def seen(units: list[Unit]) -> list[tuple]:
    return [(u.workload.id, u.surplus, [h.pod for h in u.holds]) for u in units]


step = st.one_of(
    st.tuples(st.just("hold"), st.sampled_from(WIDS), st.sampled_from(PODS),
              st.integers(0, len(NODES) - 1), st.integers(0, 3)),
    st.tuples(st.just("release"), st.sampled_from(WIDS), st.sampled_from(PODS)),
    st.tuples(st.just("workload"), st.sampled_from(WIDS), st.integers(0, 2),
              st.integers(1, 3), st.booleans()),
    st.tuples(st.just("cycle"), st.lists(st.one_of(
        st.tuples(st.just("ask"), st.integers(0, len(NODES) - 1)),
        st.tuples(st.just("evict"), st.sampled_from(WIDS), st.booleans()),
        st.tuples(st.just("build"), st.sampled_from(["x", "y"]), st.sampled_from("ab")),
    ), max_size=8)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40))
@example([("hold", "w0", "p0", 0, 0), ("hold", "w0", "p1", 0, 1), ("hold", "w2", "p0", 0, 2),
          ("workload", "w2", 1, 1, True),
          ("cycle", [("ask", 0), ("evict", "w2", True), ("ask", 0)])])
@example([("hold", "w0", "p0", 0, 0), ("hold", "w4", "p0", 0, 1), ("hold", "w3", "p0", 0, 2),
          ("hold", "w1", "p0", 0, 3), ("cycle", [("evict", "w3", False), ("ask", 0)])])
@example([("hold", "w0", "p0", 0, 0), ("hold", "w0", "p1", 0, 1), ("hold", "w1", "p0", 0, 2),
          ("hold", "w5", "p0", 1, 0), ("cycle", [("evict", "w0", True), ("ask", 0)])])
def test_units_on_ranks_as_with_every_queue_built(steps):
    nodes = [Node(name, pool, True, 4, cpu_millis=8000, memory_mib=8192)
             for name, pool in NODES]
    ledger = Ledger(nodes)
    workloads = {wid: Workload(wid, "x" if i % 2 else "y", i % 3, T0 + timedelta(seconds=i),
                               1, min_pods=1, pods=4) for i, wid in enumerate(WIDS)}
    for kind, *args in [*steps, ("cycle", [("ask", 0), ("ask", 1), ("ask", 2)])]:
        if kind == "hold":
            wid, pod, n, device = args
            w = workloads[wid]
            ledger.hold(Allocation(wid, pod, NODES[n][0], (device,) if device < 3 else (),
                                   cpu_millis=100), w.project, w.preemptible)
        elif kind == "release":
            ledger.release(*args)
        elif kind == "workload":
            wid, priority, min_pods, preemptible = args
            old = workloads[wid]
            workloads[wid] = Workload(wid, old.project, priority, old.submitted_at, 1,
                                      min_pods=min_pods, pods=4, preemptible=preemptible)
        else:
            snapshot = ClusterSnapshot(tuple(nodes), tuple(workloads.values()),
                                       pools=(NodePool("a"), NodePool("b")))
            solver = Solver(Session(snapshot, ledger))
            before = Solver(Session(snapshot, ledger))
            before._rank_units_on = types.MethodType(built_rank, before)
            before._units = types.MethodType(units_afresh, before)
            for asked, (what, *detail) in enumerate(args[0]):
                if what == "ask":
                    name, pool = NODES[detail[0]]
                    got = solver.units_on(solver.session.nodes[name], pool, asked)
                    want = before.units_on(before.session.nodes[name], pool, asked)
                    assert seen(got) == seen(want)
                elif what == "evict":
                    wid, surplus = detail
                    for s in (solver, before):
                        holds = s.holds.get(wid)
                        if holds:
                            taken = holds[-1:] if surplus else holds
                            s.record_eviction(Unit(holds[0].workload, taken, surplus),
                                              "reclaim", None, "")
                else:
                    assert seen(solver._units(*detail)) == seen(before._units(*detail))
            for project in ("x", "y"):  # every queue, as first built
                for pool in ("a", "b"):
                    assert seen(solver._units(project, pool)) == seen(
                        before._units(project, pool))
